"""Dependency order for things with prerequisites (images, services), with cycles named."""

from __future__ import annotations

from typing import Iterable, Mapping


class CycleError(ValueError):
    """The prerequisites form a cycle; `cycle` lists it, first name repeated at the end."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("prerequisites form a cycle: " + " -> ".join(cycle))


def dependency_order(prerequisites: Mapping[str, Iterable[str]], wanted: Iterable[str] | None = None) -> list[str]:
    """`wanted` (default: all) and everything they need, each after its prerequisites.

    Ties keep the mapping's order, so the result is stable. Unknown names are the caller's to
    check; here they raise KeyError.
    """
    order: list[str] = []
    state: dict[str, str] = {}  # name -> "visiting" | "done"

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise CycleError(path[path.index(name):] + [name])
        state[name] = "visiting"
        for needed in prerequisites[name]:
            visit(needed, path + [name])
        state[name] = "done"
        order.append(name)

    for name in wanted if wanted is not None else prerequisites:
        visit(name, [])
    return order

