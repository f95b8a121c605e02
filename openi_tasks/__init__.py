"""openi-tasks: turn bare Linux machines into a Kubernetes GPU-cluster platform.

The task collection lives in `openi_tasks.collection`; `tasks.py` at the repository root exposes
it to `inv`, and the installed command `openi` (`openi_tasks.main`) runs it without a `tasks.py`.
"""

__version__ = "0.2.0"
