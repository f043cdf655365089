"""OS::Neutron::Network: the project's network topology, one pseudo-resource per project.

Its id is the project id and its name "Network Topology"; it exists when the project has
at least one Neutron network.
"""

from __future__ import annotations

from karbor.common import clients, constants, exception
from karbor.resource import Resource
from karbor.services.protection.protectable_plugins._openstack import (
    OpenStackProtectablePlugin,
)

NAME = "Network Topology"


class NetworkProtectablePlugin(OpenStackProtectablePlugin):
    _SUPPORT_RESOURCE_TYPE = constants.NETWORK_RESOURCE_TYPE
    _SERVICE = "Neutron"

    def get_parent_resource_types(self):
        # A server depends on its project's topology (an addition to the original): the
        # topology is then restored before the server is created on it.
        return (constants.PROJECT_RESOURCE_TYPE, constants.SERVER_RESOURCE_TYPE)

    def _topology(self, context, project_id) -> list[Resource]:
        nets = self._listing(context, "list networks",
                             lambda conn: conn.network.networks(project_id=project_id))
        if not nets:
            return []
        return [Resource(type=self._SUPPORT_RESOURCE_TYPE, id=project_id, name=NAME,
                         extra_info={"network_ids": [n.id for n in nets]})]

    def list_resources(self, context, parameters=None):
        return self._topology(context, context.project_id)

    def show_resource(self, context, resource_id, parameters=None):
        if not clients.cloud_configured(context):
            self._conn(context)  # raises the clear "no OpenStack cloud configured"
        if resource_id == context.project_id:
            found = self._topology(context, resource_id)
            if found:
                return found[0]
        raise exception.ProtectableResourceNotFound(
            resource_id=resource_id, resource_type=self._SUPPORT_RESOURCE_TYPE,
            reason="the network topology is the caller's project id, with networks")

    def _dependents(self, context, parent_resource):
        if parent_resource.type == constants.SERVER_RESOURCE_TYPE:
            return self._topology(context, context.project_id)
        return self._topology(context, parent_resource.id)
