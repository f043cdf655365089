"""The hook DAG of the plugin guide, built over a resource graph.

Per resource: prepare_begin → prepare_finish → main → complete.  For a parent P
and a child C (P depends on C): P.prepare_begin → C.prepare_begin,
C.prepare_finish → P.prepare_finish, C.complete → P.complete.  Main hooks have
no edges across resources.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from karbor.resource import Resource
from karbor.services.protection.graph import GraphNode, walk
from karbor.services.protection.protection_plugin import HOOKS


@dataclass(eq=False)
class HookTask:
    resource: Resource
    hook: str
    name: str
    requires: set[str] = field(default_factory=set)


def build_tasks(roots: list[GraphNode]) -> dict[str, HookTask]:
    tasks: dict[str, HookTask] = {}

    def key(resource: Resource, hook: str) -> str:
        return f"{hook}_{resource.type}_{resource.id}"

    nodes = walk(roots)
    for node in nodes:
        r = node.value
        previous = None
        for hook in HOOKS:
            task = HookTask(r, hook, key(r, hook))
            if previous:
                task.requires.add(previous)
            tasks[task.name] = task
            previous = task.name
    for node in nodes:
        p = node.value
        for child in node.child_nodes:
            c = child.value
            tasks[key(c, "on_prepare_begin")].requires.add(key(p, "on_prepare_begin"))
            tasks[key(p, "on_prepare_finish")].requires.add(key(c, "on_prepare_finish"))
            tasks[key(p, "on_complete")].requires.add(key(c, "on_complete"))
    return tasks


def run_sequential(tasks: dict[str, HookTask], run: Callable[[HookTask], None]) -> None:
    """Run every task after all it requires (Kahn's order), stopping at the first failure."""
    done: set[str] = set()
    pending = dict(tasks)
    while pending:
        ready = sorted((t for t in pending.values() if t.requires <= done),
                       key=lambda t: (HOOKS.index(t.hook), t.name))
        if not ready:
            raise RuntimeError("hook graph has a cycle")
        for task in ready:
            run(task)
            done.add(task.name)
            del pending[task.name]
