"""openi-tasks: turn bare Linux machines into a Kubernetes GPU-cluster platform.

The task collection lives in `openi_tasks.collection`; `tasks.py` at the repository root
exposes it to `inv`.
"""
