"""Shared machinery of the protectables backed by an OpenStack service (openstacksdk)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from karbor.common import clients, exception
from karbor.resource import Resource
from karbor.services.protection.protectable_plugin import ProtectablePlugin

LOG = logging.getLogger(__name__)


def matches(obj, info: dict, parameters: dict | None) -> bool:
    """``protectable-list-instances --parameters k=v``: True when every key equals the
    object's value (``id``, ``name`` or a key of its ``extra_info``); values compare as
    strings too (the client sends strings)."""
    for key, wanted in (parameters or {}).items():
        if key in ("id", "name"):
            value = getattr(obj, key, None)
        elif key in info:
            value = info[key]
        else:
            return False
        if str(value) != str(wanted) and value != wanted:
            return False
    return True


class OpenStackProtectablePlugin(ProtectablePlugin):
    """Subclasses set the type, ``_INVALID_STATUSES`` and implement ``_list``/``_get``."""

    #: Offered only when Karbor runs with Keystone (a cloud to ask); see the registry.
    needs_cloud = True

    _INVALID_STATUSES: frozenset[str] = frozenset()
    _SERVICE = "OpenStack"

    # ----------------------------------------------------------- subclass hooks
    def _list(self, conn, context) -> Iterable[Any]:
        raise NotImplementedError

    def _get(self, conn, resource_id) -> Any:
        raise NotImplementedError

    def _to_resource(self, obj) -> Resource:
        return Resource(type=self._SUPPORT_RESOURCE_TYPE, id=obj.id,
                        name=obj.name or "", extra_info=self._extra_info(obj))

    def _extra_info(self, obj) -> dict | None:
        return None

    # ----------------------------------------------------------- helpers
    def _conn(self, context):
        return clients.connection(context)

    def _valid(self, obj) -> bool:
        return (getattr(obj, "status", None) or "") not in self._INVALID_STATUSES

    def _listing(self, context, doing: str, fn: Callable[[Any], Iterable[Any]]) -> list[Any]:
        conn = self._conn(context)
        try:
            return list(fn(conn))
        except exception.KarborException:
            raise
        except Exception as exc:
            karbor_exc = clients.translate(exc, doing)
            if type(karbor_exc) is exception.KarborException:
                raise exception.ListProtectableResourceFailed(
                    type=self._SUPPORT_RESOURCE_TYPE, reason=str(exc)) from exc
            raise karbor_exc from exc

    # ----------------------------------------------------------- the plugin API
    def list_resources(self, context, parameters=None):
        objs = self._listing(context, f"list {self._SUPPORT_RESOURCE_TYPE} resources",
                             lambda conn: self._list(conn, context))
        return [self._to_resource(o) for o in objs
                if self._valid(o) and matches(o, self._extra_info(o) or {}, parameters)]

    def show_resource(self, context, resource_id, parameters=None):
        conn = self._conn(context)
        try:
            obj = self._get(conn, resource_id)
        except Exception as exc:
            if clients.is_not_found(exc):
                raise exception.ProtectableResourceNotFound(
                    resource_id=resource_id, resource_type=self._SUPPORT_RESOURCE_TYPE,
                    reason=f"{self._SERVICE} does not know it") from exc
            raise clients.translate(
                exc, f"show {self._SUPPORT_RESOURCE_TYPE} {resource_id}") from exc
        if obj is None:
            raise exception.ProtectableResourceNotFound(
                resource_id=resource_id, resource_type=self._SUPPORT_RESOURCE_TYPE,
                reason=f"{self._SERVICE} does not know it")
        if not self._valid(obj):
            raise exception.ProtectableResourceInvalidStatus(
                resource_id=resource_id, resource_type=self._SUPPORT_RESOURCE_TYPE,
                status=obj.status)
        return self._to_resource(obj)

    def get_dependent_resources(self, context, parent_resource):
        # Without a cloud nothing depends on the project (noauth plans stay usable); any
        # other failure is reported as a listing failure, which the registry skips.
        if not clients.cloud_configured(context):
            return []
        try:
            return self._dependents(context, parent_resource)
        except exception.ListProtectableResourceFailed:
            raise
        except Exception as exc:
            raise exception.ListProtectableResourceFailed(
                type=self._SUPPORT_RESOURCE_TYPE, reason=str(exc)) from exc

    def _dependents(self, context, parent_resource) -> list[Resource]:
        return []
