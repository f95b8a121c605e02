"""Entry point for `inv` in a checkout: the openi-tasks collection. Run `inv --list` to see the tasks.

Installed, the same tasks run as `openi <task>` from any directory.
"""

from openi_tasks.main import prepare_process

prepare_process()

from openi_tasks.collection import namespace  # noqa: E402

ns = namespace
