"""The resource value passed to plugins, importable from the original's path."""

from __future__ import annotations

from typing import Any, NamedTuple


class Resource(NamedTuple):
    type: str
    id: str
    name: str
    extra_info: Any = None

    def __eq__(self, other):  # identity is (type, id, name) as in the original graph
        return isinstance(other, tuple) and tuple(self[:3]) == tuple(other[:3])

    def __hash__(self):
        return hash(tuple(self[:3]))
