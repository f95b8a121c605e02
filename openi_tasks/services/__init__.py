"""The platform's services on Kubernetes: dependency order, apply, readiness, clean."""
