"""OS::Cinder::Volume protected by Cinder snapshots (``karbor-volume-snapshot-plugin``).

As the blueprint *cinder-volume-snapshot-plugin*: protect makes a snapshot of the volume
in the main hook (``snapshot_name``, ``description``, ``force``) and records its id in the
resource's bank section (``metadata``: ``volume_id``, ``size``, ``snapshot_id``); restore
creates a new volume from that snapshot (``restore_name``, ``restore_description``); delete
deletes the snapshot.  The data stays in Cinder, next to the volume: a snapshot is not a
backup.  Waits are bounded (``[volume_snapshot_plugin] poll_interval, poll_timeout``).
"""

from __future__ import annotations

import logging

from karbor.common import constants
from karbor.services.protection.protection_plugins import _cloud, _params
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


_metadata = _cloud.metadata_of
_drop = _cloud.drop
_Base = _cloud.Operation


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
                force=_params.flag(parameters, "force"))
            snapshot_id = snapshot.id
            section.update_object("metadata", {"volume_id": resource.id, "size": volume.size,
                                               "snapshot_id": snapshot_id})
            progress = kwargs.get("progress")
            if progress is not None and volume.size:
                progress.report(bytes_total=volume.size * cc.GiB)
            cc.wait(cc.reporting(lambda: conn.block_storage.get_snapshot(snapshot_id),
                                 progress, volume.size),
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
        if progress is not None and volume.size:
            progress.report(bytes_done=volume.size * cc.GiB)
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


class _Verify(_cloud.StatusVerify):
    ERROR = cc.CinderError
    SAVED, NOUN = "the snapshot", "volume"
    BAD = "The status of volume snapshot is {status}."

    def check(self, checkpoint, resource, context):
        snapshot_id = _saved(checkpoint, resource)["snapshot_id"]
        conn = cc.connection(context)
        return snapshot_id, cc.status_of(lambda: conn.block_storage.get_snapshot(snapshot_id))[0]


class _Delete(_cloud.SavedDelete):
    ERROR = cc.CinderError
    WHAT = "the snapshot of volume"

    def remove(self, section, context):
        snapshot_id = _metadata(section).get("snapshot_id")
        if snapshot_id:
            cc.delete_snapshot(cc.connection(context), snapshot_id, **self._wait_kw())


class VolumeSnapshotProtectionPlugin(_cloud.Plugin):
    _SUPPORT_RESOURCE_TYPES = [RESOURCE_TYPE]
    GROUP = GROUP
    OPTS = cc.plugin_opts
    OPERATIONS = {"protect": _Protect, "restore": _Restore, "verify": _Verify,
                  "delete": _Delete}
    OPTIONS_SCHEMA = OPTIONS_SCHEMA
    RESTORE_SCHEMA = RESTORE_SCHEMA
    VERIFY_SCHEMA = VERIFY_SCHEMA
    SAVED_INFO_SCHEMA = SAVED_INFO_SCHEMA
