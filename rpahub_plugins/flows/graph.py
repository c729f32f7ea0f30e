"""The task graph of a flow, without a database: checking it, ordering it, and who
depends on whom. Tasks are ``(key, parents)`` pairs in the order they were declared;
every answer is deterministic in that order, so a console draws the same DAG twice.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping, Sequence

# No dots: a child receives a parent's outputs as arguments named "<parentKey>.<outputName>".
KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")

Tasks = Sequence[tuple[str, Sequence[str]]]


def problems(tasks: Tasks) -> list[tuple[str, str]]:
    """``(field, message)`` for every bad key, unknown or repeated parent, and a cycle."""
    out: list[tuple[str, str]] = []
    index: dict[str, int] = {}
    for i, (key, _) in enumerate(tasks):
        if not KEY.fullmatch(key):
            out.append((f"tasks.{i}.key", "1-64 letters, digits, '_' or '-', starting with a letter"))
        elif key in index:
            out.append((f"tasks.{i}.key", f"duplicate key {key!r} (also tasks.{index[key]})"))
        else:
            index[key] = i
    for i, (_, parents) in enumerate(tasks):
        seen: set[str] = set()
        for parent in parents:
            if parent not in index:
                out.append((f"tasks.{i}.parents", f"unknown task key {parent!r}"))
            elif parent in seen:
                out.append((f"tasks.{i}.parents", f"{parent!r} listed twice"))
            seen.add(parent)
    if not out:  # a cycle is only meaningful between known keys
        cycle = find_cycle(tasks)
        if cycle:
            out.append((f"tasks.{index[cycle[0]]}.parents", "cycle: " + " → ".join(cycle)))
    return out


def children_of(tasks: Tasks) -> dict[str, list[str]]:
    children: dict[str, list[str]] = {key: [] for key, _ in tasks}
    for key, parents in tasks:
        for parent in dict.fromkeys(parents):
            children.setdefault(parent, []).append(key)
    return children


def find_cycle(tasks: Tasks) -> list[str] | None:
    """A cycle as a closed path ``[a, b, c, a]`` (parent before child), or ``None``.

    The last step of the path is the edge that closes it, declared in the parents of
    the path's first task."""
    children = children_of(tasks)
    colour: dict[str, int] = {}  # absent: unseen, 1: on the current path, 2: done
    for root, _ in tasks:
        if root in colour:
            continue
        path, stack = [root], [iter(children[root])]
        colour[root] = 1
        while stack:  # iterative: a long chain must not hit the recursion limit
            child = next(stack[-1], None)
            if child is None:
                colour[path.pop()] = 2
                stack.pop()
            elif colour.get(child) == 1:
                return path[path.index(child):] + [child]
            elif child not in colour:
                colour[child] = 1
                path.append(child)
                stack.append(iter(children[child]))
    return None


def topological_order(tasks: Tasks, priority: Mapping[str, int] | None = None) -> list[str]:
    """Parents before children; among tasks ready together, higher priority first,
    then declaration order. Raises ``ValueError`` on a cycle (check :func:`problems` first)."""
    priority = priority or {}
    declared = {key: i for i, (key, _) in enumerate(tasks)}
    waiting = {key: len(set(parents)) for key, parents in tasks}
    children = children_of(tasks)
    ready = [(-priority.get(k, 0), declared[k], k) for k, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, _, key = heapq.heappop(ready)
        order.append(key)
        for child in children[key]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (-priority.get(child, 0), declared[child], child))
    if len(order) != len(tasks):
        raise ValueError("cycle: " + " → ".join(find_cycle(tasks) or ()))
    return order


def descendants(key: str, children: Mapping[str, Sequence[str]]) -> set[str]:
    out: set[str] = set()
    todo = list(children.get(key, ()))
    while todo:
        child = todo.pop()
        if child not in out:
            out.add(child)
            todo.extend(children.get(child, ()))
    return out
