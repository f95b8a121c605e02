"""Calls to etcd and the API server, retried through transient failures within a deadline.

A loaded machine drops a connection or times out now and then; one such blip must not fail an
etcdfix or a deploy. What is retried is decided by the caller (`transient`); everything else
is raised at once. When the deadline passes, the error is one sentence: what was asked of whom,
how often, and the last cause.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from .errors import OpenIError

T = TypeVar("T")


@dataclass(frozen=True)
class Patience:
    """How long to keep trying, and how the pause between attempts grows."""

    deadline: float = 30.0
    first_delay: float = 0.5
    max_delay: float = 5.0


DEFAULT = Patience()


class GaveUp(OpenIError):
    """A call kept failing with transient errors until its deadline."""


def retried(what: str, call: Callable[[], T], transient: Callable[[BaseException], bool],
            patience: Patience = DEFAULT, *, sleep: Callable[[float], None] = time.sleep,
            clock: Callable[[], float] = time.monotonic) -> T:
    """`call()`, again after each transient failure (exponential backoff with jitter) until the
    deadline; `what` names the operation and its target for the final error."""
    start = clock()
    delay = patience.first_delay
    attempts = 0
    while True:
        attempts += 1
        try:
            return call()
        except Exception as exc:
            if not transient(exc):
                raise
            elapsed = clock() - start
            pause = delay * random.uniform(0.8, 1.2)  # the jittered pause must fit, not just `delay`
            if elapsed + pause > patience.deadline:
                raise GaveUp(f"{what} failed {attempts} time{'s' if attempts > 1 else ''} in {elapsed:.0f}s; "
                             f"last: {cause(exc)}") from None
            sleep(pause)
            delay = min(delay * 2, patience.max_delay)


def cause(exc: BaseException) -> str:
    """An exception as a short phrase: its first line, or its type when it says nothing."""
    if type(exc).__module__.startswith("kubernetes.") and hasattr(exc, "status") and hasattr(exc, "body"):
        return _api_answer(exc)
    text = str(exc).strip().splitlines()
    detail = getattr(exc, "detail_text", None)  # etcd3gw keeps the server's answer here
    first = text[0] if text else ""
    if detail and (not first or first == "()"):
        first = str(detail).strip().splitlines()[0] if str(detail).strip() else ""
    name = type(exc).__name__
    return f"{name}: {first[:200]}" if first else name


def _api_answer(exc: BaseException) -> str:
    """The Kubernetes client's ApiException, whose first line is only "(403)": the status, its
    reason and the API server's own message."""
    import json

    message = ""
    try:
        message = json.loads(getattr(exc, "body", "") or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = str(getattr(exc, "body", "") or "")
    said = f"{getattr(exc, 'status', '')} {getattr(exc, 'reason', '') or ''}".strip()
    return f"the Kubernetes API answered {said}" + (f": {message[:300]}" if message else "")
