"""The `cluster` namespace: check, render and run commands on the configured machines."""
