"""Hadoop's configuration: per-role XML and env files, YARN queues from virtual clusters."""
