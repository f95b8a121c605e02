"""Work on many hosts at once, at most `limit` at a time, every host's result or error kept.

The workers are daemon threads: when the operator presses Ctrl-C, `CANCEL` is set, every command
in flight stops at its next poll, and the interpreter can exit without waiting for a host that
is stuck in a TCP connect. Work started from a clean-up that is exempt from the cancellation
(releasing the cluster lock after Ctrl-C) runs in workers exempt as well.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Sequence

from .channel import CANCEL, cancelled, exempt_from_cancel, is_exempt
from .errors import Cancelled

_END = object()


class Results(dict):
    """item -> result, or the exception that stopped its work."""

    @property
    def failed(self) -> dict:
        return {item: value for item, value in self.items() if isinstance(value, BaseException)}


def fan_out(items: Sequence, work: Callable[[Any], Any], limit: int) -> Results:
    """Run `work(item)` for every item, at most `limit` at once; item -> result or exception."""
    results = Results()
    if not items:
        return results
    queue = iter(items)
    lock = threading.Lock()
    exempt = is_exempt()

    def worker() -> None:
        with exempt_from_cancel() if exempt else contextlib.nullcontext():
            while not cancelled():
                with lock:
                    item = next(queue, _END)
                if item is _END:
                    return
                try:
                    outcome = work(item)
                except Exception as exc:  # a host's failure is a result, never lost
                    outcome = exc
                with lock:
                    results[item] = outcome

    threads = [threading.Thread(target=worker, name="openi-fan-out", daemon=True)
               for _ in range(max(1, min(limit, len(items))))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        CANCEL.set()
        raise
    for item in items:
        results.setdefault(item, Cancelled("interrupted before it started"))
    return results
