"""OS::Glance::Image: Glance images, children of the project and of servers (boot image)."""

from __future__ import annotations

from karbor.common import clients, constants, exception
from karbor.resource import Resource
from karbor.services.protection.protectable_plugins._openstack import (
    OpenStackProtectablePlugin,
)


class ImageProtectablePlugin(OpenStackProtectablePlugin):
    _SUPPORT_RESOURCE_TYPE = constants.IMAGE_RESOURCE_TYPE
    _SERVICE = "Glance"
    _INVALID_STATUSES = frozenset({"killed", "deleted", "pending_delete", "deactivated"})

    def get_parent_resource_types(self):
        return (constants.SERVER_RESOURCE_TYPE, constants.PROJECT_RESOURCE_TYPE)

    def _list(self, conn, context):
        return conn.image.images()

    def _get(self, conn, resource_id):
        return conn.image.get_image(resource_id)

    def _extra_info(self, obj):
        return {"status": obj.status}

    def _dependents(self, context, parent_resource):
        if parent_resource.type == constants.PROJECT_RESOURCE_TYPE:
            images = self._listing(context, "list images",
                                   lambda conn: self._list(conn, context))
            return [self._to_resource(i) for i in images
                    if i.owner_id == parent_resource.id and self._valid(i)]
        if parent_resource.type != constants.SERVER_RESOURCE_TYPE:
            return []
        conn = self._conn(context)
        try:
            server = conn.compute.get_server(parent_resource.id)
        except Exception as exc:
            if clients.is_not_found(exc):
                return []
            raise
        image = server.image
        image_id = image.get("id") if isinstance(image, dict) else getattr(image, "id", None)
        if not image_id:  # booted from a volume
            return []
        try:
            found = conn.image.get_image(image_id)
        except Exception as exc:
            if clients.is_not_found(exc):
                raise exception.ListProtectableResourceFailed(
                    type=self._SUPPORT_RESOURCE_TYPE,
                    reason=f"boot image {image_id} of server {server.id} is gone") from exc
            raise
        return [Resource(type=self._SUPPORT_RESOURCE_TYPE, id=found.id, name=found.name or "",
                         extra_info={"server_id": server.id})]
