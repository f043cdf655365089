"""OS::Keystone::Project: the caller's own project, known without asking any cloud."""

from __future__ import annotations

from karbor.common import constants, exception
from karbor.resource import Resource
from karbor.services.protection.protectable_plugin import ProtectablePlugin


class ProjectProtectablePlugin(ProtectablePlugin):
    _SUPPORT_RESOURCE_TYPE = constants.PROJECT_RESOURCE_TYPE

    def get_parent_resource_types(self):
        return ()

    def _resource(self, context):
        return Resource(type=self._SUPPORT_RESOURCE_TYPE, id=context.project_id,
                        name=context.project_name or context.project_id)

    def list_resources(self, context, parameters=None):
        return [self._resource(context)]

    def show_resource(self, context, resource_id, parameters=None):
        if resource_id != context.project_id:
            raise exception.ProtectableResourceNotFound(
                resource_id=resource_id, resource_type=self._SUPPORT_RESOURCE_TYPE,
                reason="only the caller's own project can be shown")
        return self._resource(context)

    def get_dependent_resources(self, context, parent_resource):
        return []
