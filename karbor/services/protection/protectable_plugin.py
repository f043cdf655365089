"""The protectable plugin SDK: how Karbor discovers resources and their dependencies."""

from __future__ import annotations

from karbor.resource import Resource


class ProtectablePlugin:
    _SUPPORT_RESOURCE_TYPE: str | None = None

    def __init__(self, context=None, config=None):
        self._context = context
        self._config = config

    def get_resource_type(self) -> str:
        if self._SUPPORT_RESOURCE_TYPE is None:
            raise NotImplementedError
        return self._SUPPORT_RESOURCE_TYPE

    def get_parent_resource_types(self) -> tuple[str, ...]:
        return ()

    def list_resources(self, context, parameters=None) -> list[Resource]:
        raise NotImplementedError

    def show_resource(self, context, resource_id, parameters=None) -> Resource:
        raise NotImplementedError

    def get_dependent_resources(self, context, parent_resource) -> list[Resource]:
        return []
