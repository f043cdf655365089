"""OS::Cinder::Volume protected by Cinder snapshots (``karbor-volume-snapshot-plugin``).

As the blueprint *cinder-volume-snapshot-plugin*: protect makes a snapshot of the volume
in the main hook (``snapshot_name``, ``description``, ``force``) and records its id in the
resource's bank section (``metadata``: ``volume_id``, ``size``, ``snapshot_id``); restore
creates a new volume from that snapshot (``restore_name``, ``restore_description``); delete
deletes the snapshot.  The data stays in Cinder, next to the volume: a snapshot is not a
backup.  Waits are bounded (``[volume_snapshot_plugin] poll_interval, poll_timeout``).
"""

from __future__ import annotations

import contextlib
import logging

from karbor.common import constants, exception
from karbor.services.protection import protection_plugin
from karbor.services.protection.protection_plugins import cinder_common as cc

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = constants.VOLUME_RESOURCE_TYPE
GROUP = "volume_snapshot_plugin"

OPTIONS_SCHEMA = {
    "title": "Volume Snapshot Protection Options",
    "type": "object",
    "properties": {
        "snapshot_name": {"type": "string", "title": "Snapshot Name",
                          "description": "The name of the volume snapshot."},
        "description": {"type": "string", "title": "Description",
                        "description": "The description of the volume snapshot."},
        "force": {"type": "boolean", "title": "Force",
                  "description": "If force is True, create a snapshot even if the volume "
                                 "is attached to an instance.",
                  "default": False},
    },
    "required": ["snapshot_name", "description", "force"],
}

RESTORE_SCHEMA = {
    "title": "Volume Protection Restore",
    "type": "object",
    "properties": {
        "restore_name": {"type": "string", "title": "Restore Name",
                         "description": "The name of the restored volume.", "default": None},
        "restore_description": {"type": "string", "title": "Restore Description",
                                "description": "The description of the restored volume.",
                                "default": None},
    },
}

VERIFY_SCHEMA = {"title": "Volume Snapshot Verify", "type": "object", "properties": {}}
SAVED_INFO_SCHEMA = {"title": "Volume Snapshot Saved Info", "type": "object", "properties": {}}


def _metadata(section) -> dict:
    try:
        return section.get_object("metadata") or {}
    except exception.BankObjectNotFound:
        return {}


def _drop(section, key) -> None:
    with contextlib.suppress(exception.BankObjectNotFound):
        section.delete_object(key)


class _Base(protection_plugin.Operation):
    def __init__(self, opts):
        self._opts = opts

    def _wait_kw(self) -> dict:
        return {"interval": self._opts.poll_interval, "timeout": self._opts.poll_timeout}


class _Protect(_Base):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", constants.CHECKPOINT_STATUS_PROTECTING)
        conn = cc.connection(context)
        snapshot_id = None
        try:
            volume = cc.wait(lambda: conn.block_storage.get_volume(resource.id),
                             success=cc.VOLUME_USABLE, failure=cc.VOLUME_FAILED,
                             waiting=cc.VOLUME_WAIT, what=f"volume {resource.id}",
                             **self._wait_kw())
            snapshot = cc.call(
                f"snapshot volume {resource.id}", conn.block_storage.create_snapshot,
                volume_id=resource.id,
                name=parameters.get("snapshot_name") or f"karbor-{checkpoint.id}",
                description=parameters.get("description")
                or f"Karbor checkpoint {checkpoint.id}",
                force=cc.as_bool(parameters.get("force")))
            snapshot_id = snapshot.id
            section.update_object("metadata", {"volume_id": resource.id, "size": volume.size,
                                               "snapshot_id": snapshot_id})
            cc.wait(lambda: conn.block_storage.get_snapshot(snapshot_id),
                    success=("available",), failure=cc.SNAPSHOT_FAILED,
                    waiting=cc.SNAPSHOT_WAIT,
                    what=f"snapshot {snapshot_id} of volume {resource.id}", **self._wait_kw())
        except Exception as exc:
            if snapshot_id:
                cc.quietly(f"delete snapshot {snapshot_id}", cc.delete_snapshot, conn,
                           snapshot_id, **self._wait_kw())
                _drop(section, "metadata")
            section.update_object("status", constants.CHECKPOINT_STATUS_ERROR)
            raise cc.CinderError(reason=f"Error creating snapshot for volume {resource.id}: "
                                        f"{exc}") from exc
        section.update_object("status", constants.CHECKPOINT_STATUS_AVAILABLE)

    def revert(self, checkpoint, resource, context, parameters, hook=None, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        snapshot_id = _metadata(section).get("snapshot_id")
        if snapshot_id:
            cc.quietly(f"delete snapshot {snapshot_id}", cc.delete_snapshot,
                       cc.connection(context), snapshot_id, **self._wait_kw())
            _drop(section, "metadata")
        section.update_object("status", constants.CHECKPOINT_STATUS_ERROR)


def _saved(checkpoint, resource) -> dict:
    metadata = _metadata(checkpoint.get_resource_bank_section(resource.id))
    if not metadata.get("snapshot_id"):
        raise cc.CinderError(reason=f"no snapshot of volume {resource.id} in the checkpoint")
    return metadata


class _Restore(_Base):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        conn = cc.connection(context)
        new_id = None
        try:
            saved = _saved(checkpoint, resource)
            attrs = {"size": saved["size"], "snapshot_id": saved["snapshot_id"],
                     "name": parameters.get("restore_name")
                     or f"volume-{checkpoint.id}@{resource.id}"}
            if parameters.get("restore_description"):
                attrs["description"] = parameters["restore_description"]
            volume = cc.call(f"create a volume from snapshot {saved['snapshot_id']}",
                             conn.block_storage.create_volume, **attrs)
            new_id = volume.id
            cc.record(kwargs, "restore", resource.type, new_id, "restoring")
            cc.wait(lambda: conn.block_storage.get_volume(new_id), success=cc.VOLUME_USABLE,
                    failure=cc.VOLUME_FAILED, waiting=cc.VOLUME_WAIT,
                    what=f"volume {new_id} created from snapshot {saved['snapshot_id']}",
                    **self._wait_kw())
        except Exception as exc:
            reason = f"Error restoring volume {resource.id}: {exc}"
            cc.record(kwargs, "restore", resource.type, new_id or resource.id, "error", reason)
            if new_id:
                cc.quietly(f"delete half-restored volume {new_id}", cc.delete_volume, conn,
                           new_id, **self._wait_kw())
            raise cc.CinderError(reason=reason) from exc
        kwargs.get("new_resources", {})[resource.id] = new_id
        cc.record(kwargs, "restore", resource.type, new_id, "available")


class _Verify(_Base):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        try:
            snapshot_id = _saved(checkpoint, resource)["snapshot_id"]
            conn = cc.connection(context)
            status, _ = cc.status_of(lambda: conn.block_storage.get_snapshot(snapshot_id))
        except Exception as exc:
            reason = f"Cannot check the snapshot of volume {resource.id}: {exc}"
            cc.record(kwargs, "verify", resource.type, resource.id, "error", reason)
            raise cc.CinderError(reason=reason) from exc
        if status != "available":
            reason = f"The status of volume snapshot is {status}."
            cc.record(kwargs, "verify", resource.type, resource.id, status, reason)
            raise cc.CinderError(reason=f"volume {resource.id}: {reason}")
        cc.record(kwargs, "verify", resource.type, resource.id, "available")


class _Delete(_Base):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        snapshot_id = _metadata(section).get("snapshot_id")
        section.update_object("status", constants.CHECKPOINT_STATUS_DELETING)
        try:
            if snapshot_id:
                cc.delete_snapshot(cc.connection(context), snapshot_id, **self._wait_kw())
        except Exception as exc:
            section.update_object("status", constants.CHECKPOINT_STATUS_ERROR)
            raise cc.CinderError(reason=f"Error deleting the snapshot of volume "
                                        f"{resource.id}: {exc}") from exc
        _drop(section, "metadata")
        section.update_object("status", constants.CHECKPOINT_STATUS_DELETED)


class VolumeSnapshotProtectionPlugin(protection_plugin.ProtectionPlugin):
    _SUPPORT_RESOURCE_TYPES = [RESOURCE_TYPE]
    #: Only usable with a cloud (Keystone mode): providers using it are hidden otherwise.
    needs_cloud = True

    def __init__(self, config=None):
        super().__init__(config)
        self._opts = cc.register(config, GROUP, cc.plugin_opts())

    def get_protect_operation(self, resource):
        return _Protect(self._opts)

    def get_restore_operation(self, resource):
        return _Restore(self._opts)

    def get_verify_operation(self, resource):
        return _Verify(self._opts)

    def get_delete_operation(self, resource):
        return _Delete(self._opts)

    @classmethod
    def get_supported_resources_types(cls):
        return list(cls._SUPPORT_RESOURCE_TYPES)

    @classmethod
    def get_options_schema(cls, resource_type):
        return OPTIONS_SCHEMA

    @classmethod
    def get_restore_schema(cls, resource_type):
        return RESTORE_SCHEMA

    @classmethod
    def get_verify_schema(cls, resource_type):
        return VERIFY_SCHEMA

    @classmethod
    def get_saved_info_schema(cls, resource_type):
        return SAVED_INFO_SCHEMA
