"""The resource graph: plan resources expanded through protectable dependencies.

Serialized in the original's ``resource_graph`` format (post-order ids
``0x0, 0x1, ...``; ``[nodes, adjacency]``) so clients see the same field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from karbor.common import exception
from karbor.resource import Resource


@dataclass(eq=False)
class GraphNode:
    value: Resource
    child_nodes: list[GraphNode] = field(default_factory=list)


def build_graph(start: Iterable[Resource],
                get_children: Callable[[Resource], Iterable[Resource]]) -> list[GraphNode]:
    """DFS from every start resource; shared children become one node; a cycle is an error."""
    nodes: dict[Resource, GraphNode] = {}
    gray: set[Resource] = set()
    reached_from_other: set[Resource] = set()
    start = list(dict.fromkeys(start))

    def visit(resource: Resource) -> GraphNode:
        if resource in nodes:
            return nodes[resource]
        if resource in gray:
            raise exception.InvalidInput(
                reason=f"The resource graph has a cycle through {resource.type} {resource.id}.")
        gray.add(resource)
        node = GraphNode(resource)
        for child in get_children(resource):
            if child == resource:
                continue
            reached_from_other.add(child)
            child_node = visit(child)
            if child_node not in node.child_nodes:
                node.child_nodes.append(child_node)
        gray.discard(resource)
        nodes[resource] = node
        return node

    roots = [visit(r) for r in start]
    return [n for n in dict.fromkeys(roots) if n.value not in reached_from_other]


def walk(roots: Iterable[GraphNode]) -> list[GraphNode]:
    """Every node once, children before parents (post-order)."""
    seen: set[int] = set()
    order: list[GraphNode] = []

    def visit(node: GraphNode):
        if id(node) in seen:
            return
        seen.add(id(node))
        for child in node.child_nodes:
            visit(child)
        order.append(node)

    for root in roots:
        visit(root)
    return order


def serialize(roots: list[GraphNode]) -> str:
    order = walk(roots)
    ids = {id(n): hex(i) for i, n in enumerate(order)}
    nodes = {ids[id(n)]: [n.value.type, n.value.id, n.value.name, n.value.extra_info]
             for n in order}
    adjacency = [[ids[id(n)], [ids[id(c)] for c in n.child_nodes]]
                 for n in order if n.child_nodes]
    return json.dumps([nodes, adjacency])


def deserialize(text: str) -> list[GraphNode]:
    nodes_part, adjacency = json.loads(text)
    nodes = {}
    for sid, packed in nodes_part.items():
        packed = list(packed) + [None] * (4 - len(packed))
        nodes[sid] = GraphNode(Resource(type=packed[0], id=packed[1], name=packed[2],
                                        extra_info=packed[3]))
    children: set[str] = set()
    for parent, kids in adjacency:
        for kid in kids:
            if kid not in nodes or parent not in nodes:
                raise exception.InvalidInput(reason="resource_graph references unknown nodes")
            nodes[parent].child_nodes.append(nodes[kid])
            children.add(kid)
    return [n for sid, n in nodes.items() if sid not in children]
