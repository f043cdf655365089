"""The hook DAG follows the plugin guide's ordering rules on several graph shapes."""

from __future__ import annotations

import threading
import time

import pytest

from karbor.common import exception
from karbor.resource import Resource
from karbor.services.protection import graph, hooks


def R(name: str, type_: str = "T::Res") -> Resource:
    return Resource(type=type_, id=name, name=name)


def build(edges: dict[str, list[str]], start: list[str]):
    def children(res):
        return [R(c) for c in edges.get(res.id, [])]

    return graph.build_graph([R(s) for s in start], children)


def run_order(roots, delay: float = 0.0) -> list[tuple[str, str]]:
    """Run the DAG in parallel; return the order in which hooks *finished*.

    A hook appended to the list only after it ran, and every hook starts only
    after all it requires finished, so an edge u -> v must show u before v.
    """
    order: list[tuple[str, str]] = []
    lock = threading.Lock()

    def run(t):
        if delay and t.hook == "on_main":
            time.sleep(delay)
        with lock:
            order.append((t.resource.id, t.hook))

    hooks.run_parallel(hooks.build_tasks(roots), run, max_workers=8)
    return order


def assert_guide_order(order, edges):
    pos = {step: i for i, step in enumerate(order)}
    nodes = {r for r, _ in order}
    for r in nodes:
        assert pos[(r, "on_prepare_begin")] < pos[(r, "on_prepare_finish")] \
            < pos[(r, "on_main")] < pos[(r, "on_complete")]
    for parent, kids in edges.items():
        for child in kids:
            assert pos[(parent, "on_prepare_begin")] < pos[(child, "on_prepare_begin")]
            assert pos[(child, "on_prepare_finish")] < pos[(parent, "on_prepare_finish")]
            assert pos[(child, "on_complete")] < pos[(parent, "on_complete")]


def test_shared_child_is_one_node_with_both_parents():
    edges = {"server1": ["vol"], "server2": ["vol"]}
    roots = build(edges, ["server1", "server2"])
    nodes = graph.walk(roots)
    assert sorted(n.value.id for n in nodes) == ["server1", "server2", "vol"]
    order = run_order(roots)
    assert len(order) == 12  # four hooks, once per distinct resource
    assert_guide_order(order, edges)


def test_deep_chain_and_wide_fan_out():
    chain = {f"n{i}": [f"n{i + 1}"] for i in range(20)}
    fan = {"root": [f"leaf{i}" for i in range(50)]}
    diamond = {"top": ["left", "right"], "left": ["bottom"], "right": ["bottom"]}
    for edges, start in ((chain, ["n0"]), (fan, ["root"]), (diamond, ["top"])):
        order = run_order(build(edges, start), delay=0.001)
        assert_guide_order(order, edges)


def test_plan_resource_reached_from_another_is_not_a_root():
    roots = build({"server": ["vol"]}, ["vol", "server"])
    assert [r.value.id for r in roots] == ["server"]


def test_cycle_is_rejected():
    with pytest.raises(exception.InvalidInput, match="cycle"):
        build({"a": ["b"], "b": ["a"]}, ["a"])


def test_serialization_matches_original_format_and_round_trips():
    edges = {"server": ["volA", "image"]}
    roots = build(edges, ["server", "volB"])
    text = graph.serialize(roots)
    assert text.startswith('[{"0x0": ["T::Res", "volA", "volA", null]')
    nodes, adjacency = __import__("json").loads(text)
    assert adjacency == [["0x2", ["0x0", "0x1"]]]
    again = graph.deserialize(text)
    assert sorted(r.value.id for r in again) == ["server", "volB"]
    server = next(r for r in again if r.value.id == "server")
    assert [c.value.id for c in server.child_nodes] == ["volA", "image"]


def test_main_hooks_of_independent_resources_overlap():
    edges = {"root": ["a", "b", "c", "d"]}
    spans: dict[str, tuple[float, float]] = {}

    def run(t):
        if t.hook == "on_main":
            start = time.monotonic()
            time.sleep(0.3)
            spans[t.resource.id] = (start, time.monotonic())

    hooks.run_parallel(hooks.build_tasks(build(edges, ["root"])), run, max_workers=4)
    leaves = [spans[x] for x in "abcd"]
    # All four leaves' main hooks were running at one common instant.
    assert max(s for s, _ in leaves) < min(e for _, e in leaves)


def test_failure_stops_new_work_and_reverts_what_ran():
    edges = {"server": ["vol1", "vol2"]}
    ran, reverted = [], []

    def run(t):
        ran.append((t.resource.id, t.hook))
        if (t.resource.id, t.hook) == ("vol1", "on_main"):
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        hooks.run_parallel(hooks.build_tasks(build(edges, ["server"])), run,
                           lambda t: reverted.append((t.resource.id, t.hook)), max_workers=1)
    assert ("vol1", "on_complete") not in ran
    assert ("server", "on_complete") not in ran
    assert ("server", "on_prepare_begin") in reverted
    assert ("vol1", "on_prepare_begin") in reverted


def test_dropping_noop_hooks_keeps_every_implied_ordering():
    edges = {"server": ["vol1", "vol2"], "vol1": ["snap"]}
    roots = build(edges, ["server"])
    full = hooks.build_tasks(roots)
    real = {("server", "on_prepare_begin"), ("snap", "on_prepare_finish"), ("vol2", "on_main"),
            ("server", "on_complete"), ("snap", "on_complete")}
    kept = hooks.without_noops(full, lambda t: (t.resource.id, t.hook) in real)
    assert {(t.resource.id, t.hook) for t in kept.values()} == real

    def reachable(tasks, start):
        seen, stack = set(), [start]
        while stack:
            for r in tasks[stack.pop()].requires:
                if r not in seen:
                    seen.add(r)
                    stack.append(r)
        return seen

    for name in kept:
        # Same ancestry among the kept tasks as in the full graph.
        assert reachable(kept, name) == reachable(full, name) & set(kept)


def test_ten_thousand_resources_each_run_exactly_once():
    roots = build({"root": [f"leaf{i}" for i in range(10_000)]}, ["root"])
    tasks = hooks.without_noops(hooks.build_tasks(roots), lambda t: t.hook == "on_main")
    count = []
    hooks.run_parallel(tasks, lambda t: count.append(1), max_workers=4)
    assert len(count) == 10_001
