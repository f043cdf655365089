"""OS::Cinder::Volume protected by Cinder backups (``karbor-volume-protection-plugin``).

As the original ``CinderBackupProtectionPlugin``:

* protect, ``on_prepare_finish`` (with ``backup_from_snapshot``, the default): a temporary
  snapshot of the volume (``force``), so every volume of a checkpoint is taken at the same
  moment before the backups start; ``on_main``: a Cinder backup (``backup_mode`` ``full``,
  ``incremental`` or ``auto`` -- incremental when the volume already has an available
  backup; the default), waited for, its id recorded in the resource's bank section (``metadata``:
  ``volume_id``, ``backup_id``), then the temporary snapshot is deleted.
* restore: ``POST /backups/{id}/restore`` into a new volume (``restore_name``, default
  ``<checkpoint>@<volume>``; ``restore_description``) or onto an existing ``volume_id``;
  ``new_resources[<volume>] = <new volume>``; the per-resource status goes to the restore.
* verify: the backup is ``available``.  delete: the backup is deleted (and waited for).

Unlike the original, every wait is bounded (``poll_timeout``) and what a failed step
created (snapshot, backup, new volume) is removed again.
"""

from __future__ import annotations

import logging

from oslo_config import cfg

from karbor.common import constants
from karbor.services.protection.protection_plugins import _cloud, _params
from karbor.services.protection.protection_plugins import cinder_common as cc

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = constants.VOLUME_RESOURCE_TYPE
GROUP = "cinder_backup_protection_plugin"

OPTIONS_SCHEMA = {
    "title": "Cinder Protection Options",
    "type": "object",
    "properties": {
        "backup_name": {"type": "string", "title": "Backup Name",
                        "description": "The name of the backup."},
        "backup_mode": {"type": "string", "title": "Backup Mode",
                        "description": "The backup mode.",
                        "enum": ["full", "incremental", "auto"], "default": "auto"},
        "container": {"type": "string", "title": "Container",
                      "description": "The container which been chosen."},
        "description": {"type": "string", "title": "Description",
                        "description": "The description of the volume."},
        "force": {"type": "boolean", "title": "Force",
                  "description": "Whether to backup, even if the volumeis attached",
                  "default": False},
    },
    "required": ["backup_name", "backup_mode", "container", "force"],
}

RESTORE_SCHEMA = {
    "title": "Cinder Protection Restore",
    "type": "object",
    "properties": {
        "volume_id": {"type": "string", "title": "Volume ID",
                      "description": "The target volume ID to restore to."},
        "restore_name": {"type": "string", "title": "Restore Name",
                         "description": "The name of the restored volume.",
                         "default": None},
        "restore_description": {"type": "string", "title": "Restore Description",
                                "description": "The description of the restored volume.",
                                "default": None},
    },
}

VERIFY_SCHEMA = {"title": "Cinder Protection Verify", "type": "object", "properties": {}}

SAVED_INFO_SCHEMA = {
    "title": "Cinder Protection Saved Info",
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Name", "description": "The name for this backup."},
        "is_incremental": {"type": "boolean", "title": "Is Incremental",
                           "description": "The type of the backup, True is incremental "
                                          "and False is full."},
        "status": {"type": "string", "title": "Status",
                   "description": "The backup status, such as available.",
                   "enum": ["creating", "available", "deleting", "error", "restoring",
                            "error_restoring"]},
        "progress": {"type": "number", "title": "Progress",
                     "description": "The current operation progress for this backup.",
                     "constraint": {"min": 0, "max": 1}},
        "fail_reason": {"type": "string", "title": "Fail Reason",
                        "description": "The reason for the failure status of the backup."},
        "size": {"type": "integer", "title": "Size",
                 "description": "The size of the backup, in GB."},
        "volume_id": {"type": "string", "title": "Volume ID",
                      "description": "The ID of the volume from which the backup was "
                                     "created."},
    },
    "required": ["name", "status", "progress", "fail_reason", "size", "volume_id"],
}


def _opts():
    return cc.plugin_opts() + [
        cfg.BoolOpt("backup_from_snapshot", default=True,
                    help="Take a temporary snapshot of every volume in the prepare phase "
                         "and back the snapshot up (a consistent point in time across the "
                         "checkpoint's volumes)."),
    ]


_get = _cloud.get_object
_drop = _cloud.drop


class _Base(_cloud.Operation):
    def _wait_volume_usable(self, conn, volume_id: str):
        return cc.wait(lambda: conn.block_storage.get_volume(volume_id),
                       success=cc.VOLUME_USABLE, failure=cc.VOLUME_FAILED,
                       waiting=cc.VOLUME_WAIT, what=f"volume {volume_id}", **self._wait_kw())


class _Protect(_Base):
    def on_prepare_finish(self, checkpoint, resource, context, parameters, **kwargs):
        if not self._opts.backup_from_snapshot:
            return
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", constants.CHECKPOINT_STATUS_PROTECTING)
        conn = cc.connection(context)
        try:
            self._wait_volume_usable(conn, resource.id)
            snapshot = cc.call(f"snapshot volume {resource.id}",
                               conn.block_storage.create_snapshot, volume_id=resource.id,
                               force=True, name=f"karbor-{checkpoint.id}-{resource.id}",
                               description=f"Temporary snapshot of Karbor checkpoint "
                                           f"{checkpoint.id}")
            # recorded before waiting: whatever happens next, it can be found and removed
            section.update_object("snapshot", {"snapshot_id": snapshot.id})
            try:
                cc.wait(lambda: conn.block_storage.get_snapshot(snapshot.id),
                        success=("available",), failure=cc.SNAPSHOT_FAILED,
                        waiting=cc.SNAPSHOT_WAIT, what=f"snapshot {snapshot.id} of volume "
                                                       f"{resource.id}", **self._wait_kw())
            except Exception:
                if cc.quietly(f"delete snapshot {snapshot.id}", cc.delete_snapshot, conn,
                              snapshot.id, wait_gone=False, **self._wait_kw()):
                    _drop(section, "snapshot")
                raise
        except Exception as exc:
            section.update_object("status", constants.CHECKPOINT_STATUS_ERROR)
            raise cc.CinderError(reason=f"Error creating snapshot for volume {resource.id}: "
                                        f"{exc}") from exc

    def _mode(self, conn, volume_id: str, mode: str) -> bool:
        if mode == "incremental":
            return True
        if mode == "auto":
            # (volume_id is not a filter Cinder lets every user pass: filter here)
            backups = cc.call(f"list the backups of volume {volume_id}",
                              lambda: list(conn.block_storage.backups(details=True)))
            return any(b.volume_id == volume_id and b.status == "available" for b in backups)
        return False

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", constants.CHECKPOINT_STATUS_PROTECTING)
        conn = cc.connection(context)
        snapshot_id = (_get(section, "snapshot") or {}).get("snapshot_id")
        backup_id = None
        try:
            mode = str(parameters.get("backup_mode") or "auto")
            if mode not in ("full", "incremental", "auto"):
                raise cc.CinderError(reason=f"unknown backup_mode {mode!r}")
            volume = self._wait_volume_usable(conn, resource.id)
            progress = kwargs.get("progress")
            size = getattr(volume, "size", None)
            if progress is not None and size:
                progress.report(bytes_total=size * cc.GiB)
            attrs = {"volume_id": resource.id,
                     "name": parameters.get("backup_name") or f"karbor-{checkpoint.id}",
                     "description": parameters.get("description")
                     or f"Karbor checkpoint {checkpoint.id}",
                     "force": _params.flag(parameters, "force"),
                     "is_incremental": self._mode(conn, resource.id, mode)}
            if parameters.get("container"):
                attrs["container"] = parameters["container"]
            if snapshot_id:
                attrs["snapshot_id"] = snapshot_id
            backup = cc.call(f"back up volume {resource.id}",
                             conn.block_storage.create_backup, **attrs)
            backup_id = backup.id
            section.update_object("metadata", {"volume_id": resource.id,
                                               "backup_id": backup_id})
            cc.wait(cc.reporting(lambda: conn.block_storage.get_backup(backup_id),
                                 progress, size),
                    success=("available",), failure=("error", cc.NOT_FOUND),
                    waiting=("creating", "backing-up"), reason=_cloud.attr("fail_reason"),
                    what=f"backup {backup_id} of volume {resource.id}", **self._wait_kw())
            if progress is not None and size:
                progress.report(bytes_done=size * cc.GiB)
        except Exception as exc:
            if backup_id:
                if cc.quietly(f"delete backup {backup_id}", cc.delete_backup, conn, backup_id,
                              **self._wait_kw()):
                    _drop(section, "metadata")
            if snapshot_id:
                if cc.quietly(f"delete snapshot {snapshot_id}", cc.delete_snapshot, conn,
                              snapshot_id, **self._wait_kw()):
                    _drop(section, "snapshot")
            section.update_object("status", constants.CHECKPOINT_STATUS_ERROR)
            raise cc.CinderError(reason=f"Error backing up volume {resource.id}: {exc}") \
                from exc
        section.update_object("status", constants.CHECKPOINT_STATUS_AVAILABLE)
        if snapshot_id:
            # The temporary snapshot is not needed any more; failing to remove it is logged.
            if cc.quietly(f"delete temporary snapshot {snapshot_id}", cc.delete_snapshot,
                          conn, snapshot_id, **self._wait_kw()):
                _drop(section, "snapshot")

    def revert(self, checkpoint, resource, context, parameters, hook=None, **kwargs):
        """The checkpoint failed (elsewhere, maybe): remove what this resource created."""
        section = checkpoint.get_resource_bank_section(resource.id)
        conn = cc.connection(context)
        if hook == "on_main":
            backup_id = (_get(section, "metadata") or {}).get("backup_id")
            if backup_id:
                if cc.quietly(f"delete backup {backup_id}", cc.delete_backup, conn, backup_id,
                              **self._wait_kw()):
                    _drop(section, "metadata")
        snapshot_id = (_get(section, "snapshot") or {}).get("snapshot_id")
        if snapshot_id:
            if cc.quietly(f"delete snapshot {snapshot_id}", cc.delete_snapshot, conn,
                          snapshot_id, **self._wait_kw()):
                _drop(section, "snapshot")
        section.update_object("status", constants.CHECKPOINT_STATUS_ERROR)


def _backup_id(checkpoint, resource) -> str:
    metadata = _get(checkpoint.get_resource_bank_section(resource.id), "metadata") or {}
    backup_id = metadata.get("backup_id")
    if not backup_id:
        raise cc.CinderError(reason=f"no backup of volume {resource.id} in the checkpoint")
    return backup_id


class _Restore(_Base):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        conn = cc.connection(context)
        target = parameters.get("volume_id") or None
        name = parameters.get("restore_name") or f"{checkpoint.id}@{resource.id}"
        description = parameters.get("restore_description")
        new_id = target
        created = False
        try:
            backup_id = _backup_id(checkpoint, resource)
            body: dict = {"restore": {"volume_id": target} if target else {"name": name}}
            if target:
                self._wait_volume_usable(conn, target)
            resp = conn.block_storage.post(f"/backups/{backup_id}/restore", json=body,
                                           raise_exc=False)
            if resp.status_code >= 400:
                raise cc.CinderError(reason=f"Cinder refused to restore backup {backup_id} "
                                            f"(HTTP {resp.status_code}): {resp.text[:500]}")
            new_id = resp.json()["restore"]["volume_id"]
            created = not target
            cc.record(kwargs, "restore", resource.type, new_id, "restoring")
            cc.wait(lambda: conn.block_storage.get_volume(new_id), success=("available",),
                    failure=("error", "error_restoring", cc.NOT_FOUND, "error_deleting"),
                    waiting=("creating", "restoring-backup", "downloading"),
                    what=f"volume {new_id} restored from backup {backup_id}",
                    **self._wait_kw())
            update = {}
            if description:
                update["description"] = description
            if target and parameters.get("restore_name"):
                update["name"] = name
            if update:
                cc.call(f"update volume {new_id}", conn.block_storage.update_volume, new_id,
                        **update)
        except Exception as exc:
            reason = f"Error restoring volume {resource.id}: {exc}"
            cc.record(kwargs, "restore", resource.type, new_id or resource.id, "error", reason)
            if created:
                cc.quietly(f"delete half-restored volume {new_id}", cc.delete_volume, conn,
                           new_id, **self._wait_kw())
            raise cc.CinderError(reason=reason) from exc
        kwargs.get("new_resources", {})[resource.id] = new_id
        cc.record(kwargs, "restore", resource.type, new_id, "available")


class _Verify(_cloud.StatusVerify):
    ERROR = cc.CinderError
    SAVED, NOUN = "the backup", "volume"
    BAD = "The status of volume backup status is {status}."

    def check(self, checkpoint, resource, context):
        backup_id = _backup_id(checkpoint, resource)
        conn = cc.connection(context)
        return backup_id, cc.status_of(lambda: conn.block_storage.get_backup(backup_id))[0]


class _Delete(_cloud.SavedDelete):
    ERROR = cc.CinderError
    WHAT = "the backup of volume"
    DROP = ("metadata", "snapshot")

    def remove(self, section, context):
        backup_id = (_get(section, "metadata") or {}).get("backup_id")
        conn = cc.connection(context)
        if backup_id:
            cc.delete_backup(conn, backup_id, **self._wait_kw())
        snapshot_id = (_get(section, "snapshot") or {}).get("snapshot_id")
        if snapshot_id:  # left over by an interrupted protect
            cc.delete_snapshot(conn, snapshot_id, **self._wait_kw())


class CinderBackupProtectionPlugin(_cloud.Plugin):
    _SUPPORT_RESOURCE_TYPES = [RESOURCE_TYPE]
    GROUP = GROUP
    OPTS = _opts
    OPERATIONS = {"protect": _Protect, "restore": _Restore, "verify": _Verify,
                  "delete": _Delete}
    OPTIONS_SCHEMA = OPTIONS_SCHEMA
    RESTORE_SCHEMA = RESTORE_SCHEMA
    VERIFY_SCHEMA = VERIFY_SCHEMA
    SAVED_INFO_SCHEMA = SAVED_INFO_SCHEMA
