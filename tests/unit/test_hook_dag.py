"""The hook DAG follows the plugin guide's ordering rules on several graph shapes."""

from __future__ import annotations

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


def run_order(roots) -> list[tuple[str, str]]:
    order: list[tuple[str, str]] = []
    hooks.run_sequential(hooks.build_tasks(roots), lambda t: order.append((t.resource.id,
                                                                           t.hook)))
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
    for edges, start in ((chain, ["n0"]), (fan, ["root"])):
        order = run_order(build(edges, start))
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
