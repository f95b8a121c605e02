"""Kubernetes on the hosts: deploy phases, maintenance, and the files they put on hosts."""
