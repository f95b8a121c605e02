#!/usr/bin/env python3
"""Run one openi-tasks command as the operator runs it, counting the requests it sends to the API
server: every HTTP request the kubernetes client makes passes through `RESTClientObject.request`.

    python bench/api_counted.py services.deploy -p CONFIG

The counts go to stderr as one JSON line, `{"api-requests": {"GET": n, "PATCH": n, ...}}`, when the
command exits (whatever its exit code).
"""

from __future__ import annotations

import atexit
import collections
import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubernetes.client import rest  # noqa: E402

COUNTS: collections.Counter = collections.Counter()
_LOCK = threading.Lock()
_request = rest.RESTClientObject.request


def _counted(self, method, url, *args, **kwargs):
    with _LOCK:
        COUNTS[method] += 1
    return _request(self, method, url, *args, **kwargs)


rest.RESTClientObject.request = _counted
atexit.register(lambda: print(json.dumps({"api-requests": dict(COUNTS)}), file=sys.stderr))

if __name__ == "__main__":
    from openi_tasks.main import main

    sys.argv = ["openi", *sys.argv[1:]]
    main()
