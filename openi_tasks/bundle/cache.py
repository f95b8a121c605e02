"""Where built artifacts and Go's caches live: outside any checkout, so a fresh clone reuses them.

`$OPENI_CACHE`, else /var/cache/openi-tasks when it can be written (root), else
~/.cache/openi-tasks. Go's module and build caches are `<cache>/go/mod` and `<cache>/go/build`.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    configured = os.environ.get("OPENI_CACHE")
    if configured:
        return Path(configured).expanduser()
    system = Path("/var/cache/openi-tasks")
    if os.access(system if system.exists() else system.parent, os.W_OK):
        return system
    return Path.home() / ".cache" / "openi-tasks"
