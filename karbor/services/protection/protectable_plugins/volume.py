"""OS::Cinder::Volume: Cinder volumes, children of the project and of servers."""

from __future__ import annotations

from karbor.common import constants
from karbor.services.protection.protectable_plugins._openstack import (
    OpenStackProtectablePlugin,
)


class VolumeProtectablePlugin(OpenStackProtectablePlugin):
    _SUPPORT_RESOURCE_TYPE = constants.VOLUME_RESOURCE_TYPE
    _SERVICE = "Cinder"
    _INVALID_STATUSES = frozenset({"error", "deleting", "error_deleting"})

    def get_parent_resource_types(self):
        return (constants.SERVER_RESOURCE_TYPE, constants.PROJECT_RESOURCE_TYPE)

    def _list(self, conn, context):
        return conn.block_storage.volumes(details=True)

    def _get(self, conn, resource_id):
        return conn.block_storage.get_volume(resource_id)

    def _extra_info(self, obj):
        return {"availability_zone": obj.availability_zone, "status": obj.status}

    def _dependents(self, context, parent_resource):
        vols = self._listing(context, "list volumes",
                             lambda conn: self._list(conn, context))
        if parent_resource.type == constants.SERVER_RESOURCE_TYPE:
            picked = [v for v in vols
                      if any((a or {}).get("server_id") == parent_resource.id
                             for a in (v.attachments or []))]
        elif parent_resource.type == constants.PROJECT_RESOURCE_TYPE:
            # The tenant attribute may be hidden from non-admins: the caller's own listing
            # is then its project's volumes.
            picked = [v for v in vols
                      if v.project_id == parent_resource.id
                      or (v.project_id is None and parent_resource.id == context.project_id)]
        else:
            return []
        return [self._to_resource(v) for v in picked if self._valid(v)]
