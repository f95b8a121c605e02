"""Entry point for `inv`: the openi-tasks collection. Run `inv --list` to see the tasks."""

from openi_tasks.collection import namespace

ns = namespace
