"""openi-tasks: turn bare Linux machines into a Kubernetes GPU-cluster platform.

The task collection lives in `openi_tasks.collection`; `tasks.py` at the repository root
exposes it to `inv`.
"""

import atexit
import gc

# At exit the interpreter runs one last full collection over everything imported (pydantic's
# schemas, paramiko, invoke): about 45 ms of every command, to free memory the process is about
# to give back anyway. Frozen objects are skipped by that collection; exit stays otherwise normal.
atexit.register(gc.freeze)
