"""OS::Manila::Share: Manila shares, children of the project (as the original).

Manila is reached through openstacksdk's ``shared_file_system`` proxy, acting as the caller.
Shares in a failed or vanishing status are not protectable (the original's list).
``parameters`` of ``protectable-list-instances`` filter the listing: every given key
(``name``, ``status``, ``share_proto``, ``availability_zone``, ``share_type``, ...) must
equal the share's value.
"""

from __future__ import annotations

from karbor.common import constants
from karbor.services.protection.protectable_plugins._openstack import (
    OpenStackProtectablePlugin,
)

#: Share attributes shown as ``extra_info`` (sdk attribute -> key).
_EXTRA = (("status", "status"), ("share_protocol", "share_proto"), ("size", "size"),
          ("availability_zone", "availability_zone"), ("share_type", "share_type"),
          ("share_network_id", "share_network_id"))


class ShareProtectablePlugin(OpenStackProtectablePlugin):
    _SUPPORT_RESOURCE_TYPE = constants.SHARE_RESOURCE_TYPE
    _SERVICE = "Manila"
    _INVALID_STATUSES = frozenset({
        "deleting", "deleted", "error", "error_deleting", "manage_error", "unmanage_error",
        "extending_error", "shrinking_error", "reverting_error"})

    def get_parent_resource_types(self):
        return (constants.PROJECT_RESOURCE_TYPE,)

    def _list(self, conn, context):
        return conn.shared_file_system.shares(details=True)

    def _get(self, conn, resource_id):
        return conn.shared_file_system.get_share(resource_id)

    def _extra_info(self, obj):
        return {key: getattr(obj, attr, None) for attr, key in _EXTRA}

    def _dependents(self, context, parent_resource):
        if parent_resource.type != constants.PROJECT_RESOURCE_TYPE:
            return []
        shares = self._listing(context, "list shares", lambda conn: self._list(conn, context))
        # project_id is shown to the owner; a listing without it is the caller's project's.
        return [self._to_resource(s) for s in shares
                if (s.project_id == parent_resource.id
                    or (s.project_id is None and parent_resource.id == context.project_id))
                and self._valid(s)]
