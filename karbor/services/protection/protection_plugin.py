"""The protection plugin SDK (same names and signatures as the original's guide).

A plugin returns, per resource and operation, an ``Operation`` whose hooks the
engine calls in the order the plugin guide defines.  Hooks a plugin does not
override are no-ops.
"""

from __future__ import annotations

from typing import Any


class Operation:
    def on_prepare_begin(self, checkpoint, resource, context, parameters, **kwargs):
        pass

    def on_prepare_finish(self, checkpoint, resource, context, parameters, **kwargs):
        pass

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        pass

    def on_complete(self, checkpoint, resource, context, parameters, **kwargs):
        pass


HOOKS = ("on_prepare_begin", "on_prepare_finish", "on_main", "on_complete")


def implemented_hooks(operation: Operation) -> set[str]:
    """The hooks an Operation really overrides (others need not be scheduled)."""
    return {h for h in HOOKS
            if getattr(type(operation), h, None) is not getattr(Operation, h)}


def parameters_for(parameters: dict, resource) -> dict:
    """A resource's parameters: those of its type, overridden by ``<type>#<id>``."""
    merged = dict(parameters.get(resource.type) or {})
    merged.update(parameters.get(f"{resource.type}#{resource.id}") or {})
    return merged


class ProtectionPlugin:
    """Besides the original's methods, a plugin may check an operation's parameters before
    the operation is accepted (``check_restore_parameters``, ``check_verify_parameters``,
    ``check_copy_parameters``: classmethods, called by the API with each resource of the
    checkpoint, its merged parameters and the caller's context, raising
    ``exception.InvalidInput`` naming the parameter). They only look (configuration, the
    local file system): they must not change anything, nor wait on remote services."""

    def __init__(self, config=None):
        self._config = config

    @classmethod
    def check_restore_parameters(cls, resource, parameters: dict, context) -> None:
        return None

    @classmethod
    def check_verify_parameters(cls, resource, parameters: dict, context) -> None:
        return None

    @classmethod
    def check_copy_parameters(cls, resource, parameters: dict, context) -> None:
        return None

    def get_protect_operation(self, resource) -> Operation:
        raise NotImplementedError

    def get_restore_operation(self, resource) -> Operation:
        raise NotImplementedError

    def get_verify_operation(self, resource) -> Operation:
        raise NotImplementedError

    def get_copy_operation(self, resource) -> Operation:
        raise NotImplementedError

    def get_delete_operation(self, resource) -> Operation:
        raise NotImplementedError

    @classmethod
    def get_supported_resources_types(cls) -> list[str]:
        raise NotImplementedError

    @classmethod
    def get_options_schema(cls, resource_type) -> dict[str, Any]:
        return {}

    @classmethod
    def get_saved_info_schema(cls, resource_type) -> dict[str, Any]:
        return {}

    @classmethod
    def get_restore_schema(cls, resource_type) -> dict[str, Any]:
        return {}

    @classmethod
    def get_verify_schema(cls, resource_type) -> dict[str, Any]:
        return {}

    @classmethod
    def get_saved_info(cls, metadata_store, resource):
        return None
