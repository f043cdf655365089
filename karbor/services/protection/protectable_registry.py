"""Protectable plugins by resource type, and the dependency expansion built on them."""

from __future__ import annotations

import logging
import threading

from stevedore import extension

from karbor.common import constants, exception
from karbor.common.config import CONF
from karbor.resource import Resource
from karbor.services.protection.protectable_plugin import ProtectablePlugin

LOG = logging.getLogger(__name__)

NAMESPACE = "karbor.protectables"


class ProtectableRegistry:
    def __init__(self, plugins: list[ProtectablePlugin] | None = None):
        self._plugins: dict[str, ProtectablePlugin] = {}
        if plugins is None:
            plugins = []
            mgr = extension.ExtensionManager(NAMESPACE, invoke_on_load=False)
            cloud = CONF.auth_strategy == "keystone"
            for ext in mgr:
                if getattr(ext.plugin, "needs_cloud", False) and not cloud:
                    # Types only a cloud can answer for are not offered without one.
                    continue
                try:
                    plugins.append(ext.plugin())
                except Exception:
                    LOG.exception("protectable plugin %s could not be loaded", ext.name)
        # The original's order (its setup.cfg), whatever order the entry points load in
        # (setuptools sorts them by name): it is the order of ``dependent_types``.
        known = {t: i for i, t in enumerate(constants.RESOURCE_TYPES)}
        plugins = sorted(plugins, key=lambda p: known.get(p.get_resource_type(), len(known)))
        for plugin in plugins:
            self._plugins[plugin.get_resource_type()] = plugin

    def list_resource_types(self) -> list[str]:
        return list(self._plugins)

    def get(self, resource_type: str) -> ProtectablePlugin:
        try:
            return self._plugins[resource_type]
        except KeyError:
            raise exception.InvalidInput(reason="Invalid protectable type provided.") from None

    def dependent_types(self, resource_type: str) -> list[str]:
        self.get(resource_type)
        return [t for t, p in self._plugins.items()
                if resource_type in tuple(p.get_parent_resource_types())]

    def list_instances(self, context, resource_type, parameters=None) -> list[Resource]:
        return self.get(resource_type).list_resources(context, parameters=parameters)

    def show_instance(self, context, resource_type, resource_id, parameters=None) -> Resource:
        resource = self.get(resource_type).show_resource(context, resource_id,
                                                         parameters=parameters)
        if resource is None:
            raise exception.ProtectableResourceNotFound(
                resource_id=resource_id, resource_type=resource_type,
                reason="the plugin found nothing")
        return resource

    def fetch_dependent_resources(self, context, parent: Resource) -> list[Resource]:
        found: list[Resource] = []
        for resource_type, plugin in self._plugins.items():
            if parent.type not in tuple(plugin.get_parent_resource_types()):
                continue
            try:
                found.extend(plugin.get_dependent_resources(context, parent) or [])
            except exception.ListProtectableResourceFailed as exc:
                LOG.warning("dependents of %s from %s skipped: %s", parent.id,
                            resource_type, exc)
        return found


_registry: ProtectableRegistry | None = None
_lock = threading.Lock()


def registry() -> ProtectableRegistry:
    global _registry
    with _lock:
        if _registry is None:
            _registry = ProtectableRegistry()
        return _registry
