"""The hook DAG of the plugin guide, built over a resource graph.

Per resource: prepare_begin → prepare_finish → main → complete.  For a parent P
and a child C (P depends on C): P.prepare_begin → C.prepare_begin,
C.prepare_finish → P.prepare_finish, C.complete → P.complete.  Main hooks have
no edges across resources.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field

import taskflow.engines
from taskflow import exceptions as tf_exceptions
from taskflow import task as tf_task
from taskflow.patterns import graph_flow

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


class _HookFlowTask(tf_task.Task):
    """One hook of one resource as a TaskFlow task; revert gives the plugin its cleanup."""

    def __init__(self, hook_task: HookTask, run: Callable[[HookTask], None],
                 revert: Callable[[HookTask], None] | None):
        super().__init__(name=hook_task.name)
        self._hook_task = hook_task
        self._run = run
        self._revert = revert

    def execute(self):
        self._run(self._hook_task)

    def revert(self, *args, **kwargs):
        if self._revert is not None:
            self._revert(self._hook_task)


def run_parallel(tasks: dict[str, HookTask], run: Callable[[HookTask], None],
                 revert: Callable[[HookTask], None] | None = None,
                 max_workers: int = 4) -> None:
    """Run the DAG with TaskFlow's parallel engine: independent hooks run concurrently.

    On a failure no new task starts, running ones finish, and completed tasks are
    reverted in reverse order; the first failure is re-raised.
    """
    flow = graph_flow.Flow("hooks")
    nodes = {name: _HookFlowTask(t, run, revert) for name, t in tasks.items()}
    flow.add(*nodes.values())
    for name, t in tasks.items():
        for required in t.requires:
            flow.link(nodes[required], nodes[name])
    executor = futures.ThreadPoolExecutor(max_workers=max_workers)
    try:
        engine = taskflow.engines.load(flow, engine="parallel", executor=executor)
        try:
            engine.run()
        except tf_exceptions.WrappedFailure as wrapped:
            first = next(iter(wrapped))
            first.reraise()
    finally:
        executor.shutdown(wait=True)
