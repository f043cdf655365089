"""OS::Nova::Server: the caller's servers (Nova), children of the project."""

from __future__ import annotations

from karbor.common import constants
from karbor.services.protection.protectable_plugins._openstack import (
    OpenStackProtectablePlugin,
)


class ServerProtectablePlugin(OpenStackProtectablePlugin):
    _SUPPORT_RESOURCE_TYPE = constants.SERVER_RESOURCE_TYPE
    _SERVICE = "Nova"
    _INVALID_STATUSES = frozenset({"DELETED", "ERROR", "UNKNOWN", "SOFT_DELETED", "RESCUED"})

    def get_parent_resource_types(self):
        return (constants.PROJECT_RESOURCE_TYPE,)

    def _list(self, conn, context):
        return conn.compute.servers(details=True)

    def _get(self, conn, resource_id):
        return conn.compute.get_server(resource_id)

    def _extra_info(self, obj):
        return {"status": obj.status}

    def _dependents(self, context, parent_resource):
        return self.list_resources(context)
