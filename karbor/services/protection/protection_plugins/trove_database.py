"""OS::Trove::Instance protected by Trove backups (``karbor-database-protection-plugin``).

As the original's ``DatabaseBackupProtectionPlugin``: protect (main hook) waits for the
instance to be ``ACTIVE``, asks Trove for a backup (``backup_name``, ``description``) and
waits for it to be ``COMPLETED``; the bank section records ``metadata`` =
``instance_id, datastore, flavor, size, backup_id``.  Restore creates a new instance from
the backup with the saved flavor and volume size (``restore_name``, default
``<checkpoint id>@<instance id>``), waits for it to be ``ACTIVE`` and records it in the
restore (``OS::Trove::Instance#<new id>``) and in ``new_resources``.  Verify checks the
backup is ``COMPLETED``; delete deletes it and waits until Trove no longer knows it.

Unlike the original, every wait is bounded (``[database_backup_plugin] poll_interval,
poll_timeout``) and a failure removes what was made (a failed or timed-out backup, a
half-built instance; through ``revert`` the backups and instances made for the other
resources).  A backup Trove refuses to delete yet (still running after a timeout) stays
recorded in the bank, so deleting the checkpoint removes it later; the reason says so.

Trove has no openstacksdk proxy: its v1.0 REST API is called through a keystoneauth
Adapter on the caller's session (:class:`~karbor.services.protection.protectable_plugins.
database.TroveClient`).
"""

from __future__ import annotations

import logging

from karbor.common import constants
from karbor.services.protection.protectable_plugins.database import (
    TroveClient,
    trove_error,
)
from karbor.services.protection.protection_plugins import _cloud
from karbor.services.protection.protection_plugins._cloud import (
    NOT_FOUND,
    drop,
    message,
    metadata_of,
    record,
    status_of,
)
from karbor.services.protection.protection_plugins.manila_share import (
    PluginError,
    plugin_opts,
    wait,
)

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = constants.DATABASE_RESOURCE_TYPE
GROUP = "database_backup_plugin"

# Instance statuses (the original's sets).
INSTANCE_FAILED = ("BLOCKED", "FAILED", "REBOOT", "SHUTDOWN", "ERROR", "RESTART_REQUIRED",
                   "EJECT", "DETACH", NOT_FOUND)
INSTANCE_WAIT = ("BUILD", "RESIZE", "BACKUP", "PROMOTE", "UPGRADE")
BACKUP_FAILED = ("FAILED", "DELETE_FAILED", NOT_FOUND)
BACKUP_WAIT = ("NEW", "BUILDING", "SAVING")

OPTIONS_SCHEMA = {
    "title": "Database Protection Options",
    "type": "object",
    "properties": {
        "backup_name": {"type": "string", "title": "Backup Name",
                        "description": "The name of the database backup (default "
                                       "backup<instance id>)."},
        "description": {"type": "string", "title": "Description",
                        "description": "The description of the database backup."},
    },
    "required": ["backup_name"],
}

RESTORE_SCHEMA = {
    "title": "Database Protection Restore",
    "type": "object",
    "properties": {
        "restore_name": {"type": "string", "title": "Restore Database Instance Name",
                         "description": "The name of the restored database instance "
                                        "(default <checkpoint id>@<instance id>); it gets "
                                        "the protected instance's flavor and volume size."},
    },
}

VERIFY_SCHEMA = {"title": "Database Protection Verify", "type": "object", "properties": {}}

SAVED_INFO_SCHEMA = {
    "title": "Database Protection Saved Info",
    "type": "object",
    "properties": {
        "instance_id": {"type": "string", "title": "Instance ID"},
        "backup_id": {"type": "string", "title": "Backup ID"},
        "datastore": {"type": "object", "title": "Datastore (type, version)"},
        "flavor": {"type": "object", "title": "Flavor"},
        "size": {"type": "integer", "title": "Volume size (GiB)"},
    },
}


def _fail_reason(obj) -> str | None:
    return getattr(obj, "fault", None) and (obj.fault.get("message")
                                           if isinstance(obj.fault, dict) else str(obj.fault))


def delete_backup(trove: TroveClient, backup_id: str, *, interval: float,
                  timeout: float) -> None:
    """Delete a backup and wait until Trove no longer knows it."""
    trove.delete_backup(backup_id)
    wait(lambda: trove.get_backup(backup_id), success=(NOT_FOUND,),
         failure=("DELETE_FAILED",), waiting=("COMPLETED", "FAILED", "DELETING"),
         interval=interval, timeout=timeout, what=f"Trove backup {backup_id}",
         translate=trove_error)


def delete_instance(trove: TroveClient, instance_id: str, *, interval: float,
                    timeout: float) -> None:
    trove.delete_instance(instance_id)
    wait(lambda: trove.get_instance(instance_id), success=(NOT_FOUND,), failure=(),
         waiting=("SHUTDOWN", "ACTIVE", "ERROR", "FAILED", "BUILD", "DELETING"),
         interval=interval, timeout=timeout, what=f"Trove instance {instance_id}",
         translate=trove_error)


class _Base(_cloud.Operation):
    def _remove_backup(self, context, section, backup_id: str) -> str | None:
        """Delete the backup; None when done, else why it stays (its id stays in the bank
        so that deleting the checkpoint removes it later)."""
        try:
            delete_backup(TroveClient(context), backup_id, **self._wait_kw())
        except Exception as exc:
            LOG.warning("could not remove Trove backup %s: %s", backup_id, exc)
            return (f"Trove backup {backup_id} could not be removed yet ({message(exc)}); "
                    "deleting the checkpoint removes it")
        drop(section, "metadata")
        return None


class _Protect(_Base):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", constants.CHECKPOINT_STATUS_PROTECTING)
        backup_id = None
        try:
            trove = TroveClient(context)
            instance = wait(lambda: trove.get_instance(resource.id), success=("ACTIVE",),
                            failure=INSTANCE_FAILED, waiting=INSTANCE_WAIT,
                            what=f"Trove instance {resource.id}", translate=trove_error,
                            **self._wait_kw())
            body = {"name": parameters.get("backup_name") or f"backup{resource.id}",
                    "instance": resource.id}
            if parameters.get("description"):
                body["description"] = parameters["description"]
            backup_id = trove.create_backup(body).id
            volume = instance.volume if isinstance(instance.volume, dict) else {}
            section.update_object("metadata", {
                "instance_id": resource.id, "datastore": instance.datastore,
                "flavor": instance.flavor, "size": volume.get("size"),
                "backup_id": backup_id})
            wait(lambda: trove.get_backup(backup_id), success=("COMPLETED",),
                 failure=BACKUP_FAILED, waiting=BACKUP_WAIT,
                 what=f"backup {backup_id} of Trove instance {resource.id}",
                 reason=_fail_reason, translate=trove_error, **self._wait_kw())
        except Exception as exc:
            reason = f"Error creating backup for database instance {resource.id}: " \
                     f"{message(exc)}"
            if backup_id:
                left = self._remove_backup(context, section, backup_id)
                if left:
                    reason += f"; {left}"
            section.update_object("status", constants.CHECKPOINT_STATUS_ERROR)
            raise PluginError(reason=reason) from exc
        section.update_object("status", constants.CHECKPOINT_STATUS_AVAILABLE)

    def revert(self, checkpoint, resource, context, parameters, hook=None, **kwargs):
        """Another resource failed: the checkpoint is an error, remove this backup."""
        section = checkpoint.get_resource_bank_section(resource.id)
        backup_id = metadata_of(section).get("backup_id")
        if backup_id:
            self._remove_backup(context, section, backup_id)
        section.update_object("status", constants.CHECKPOINT_STATUS_ERROR)


def _saved(checkpoint, resource) -> dict:
    saved = metadata_of(checkpoint.get_resource_bank_section(resource.id))
    if not saved.get("backup_id"):
        raise PluginError(reason=f"no backup of Trove instance {resource.id} in the "
                                 "checkpoint")
    return saved


class _Restore(_Base):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        new_id = None
        trove = None
        try:
            saved = _saved(checkpoint, resource)
            trove = TroveClient(context)
            flavor = saved.get("flavor")
            body = {"name": parameters.get("restore_name") or f"{checkpoint.id}@{resource.id}",
                    "flavorRef": flavor.get("id") if isinstance(flavor, dict) else flavor,
                    "restorePoint": {"backupRef": saved["backup_id"]}}
            if saved.get("size"):
                body["volume"] = {"size": saved["size"]}
            new_id = trove.create_instance(body).id
            record(kwargs, "restore", resource.type, new_id, "restoring")
            wait(lambda: trove.get_instance(new_id), success=("ACTIVE",),
                 failure=INSTANCE_FAILED, waiting=INSTANCE_WAIT,
                 what=f"Trove instance {new_id} restored from backup {saved['backup_id']}",
                 reason=_fail_reason, translate=trove_error, **self._wait_kw())
        except Exception as exc:
            reason = f"Error restoring database instance {resource.id}: {message(exc)}"
            if new_id:
                try:
                    delete_instance(trove, new_id, **self._wait_kw())
                except Exception as cleanup:
                    reason += f"; the new instance {new_id} could not be removed: " \
                              f"{message(cleanup)}"
            record(kwargs, "restore", resource.type, new_id or resource.id, "error", reason)
            raise PluginError(reason=reason) from exc
        kwargs.get("new_resources", {})[resource.id] = new_id
        record(kwargs, "restore", resource.type, new_id, "available")

    def revert(self, checkpoint, resource, context, parameters, hook=None, **kwargs):
        """Another resource failed: the restore failed, remove the instance made here."""
        new_id = kwargs.get("new_resources", {}).get(resource.id)
        if not new_id:
            return
        try:
            delete_instance(TroveClient(context), new_id, **self._wait_kw())
        except Exception as exc:
            record(kwargs, "restore", resource.type, new_id, "error",
                   f"the restore failed and Trove instance {new_id} could not be removed: "
                   f"{message(exc)}")
            return
        kwargs["new_resources"].pop(resource.id, None)
        record(kwargs, "restore", resource.type, new_id, "deleted",
               "removed because the restore failed")


class _Verify(_cloud.StatusVerify):
    EXPECTED = "COMPLETED"
    ERROR = PluginError
    SAVED, NOUN = "the backup", "database instance"
    BAD = "The status of database backup {id} is {status}."
    explain = staticmethod(message)

    def check(self, checkpoint, resource, context):
        backup_id = _saved(checkpoint, resource)["backup_id"]
        trove = TroveClient(context)
        return backup_id, status_of(lambda: trove.get_backup(backup_id))[0]


class _Delete(_cloud.SavedDelete):
    ERROR = PluginError
    WHAT = "the backup of database instance"
    explain = staticmethod(message)

    def remove(self, section, context):
        backup_id = metadata_of(section).get("backup_id")
        if backup_id:
            delete_backup(TroveClient(context), backup_id, **self._wait_kw())


def _opts():
    return plugin_opts("Trove instance or backup")


class DatabaseBackupProtectionPlugin(_cloud.Plugin):
    _SUPPORT_RESOURCE_TYPES = [RESOURCE_TYPE]
    GROUP = GROUP
    OPTS = _opts
    OPERATIONS = {"protect": _Protect, "restore": _Restore, "verify": _Verify,
                  "delete": _Delete}
    OPTIONS_SCHEMA = OPTIONS_SCHEMA
    RESTORE_SCHEMA = RESTORE_SCHEMA
    VERIFY_SCHEMA = VERIFY_SCHEMA
    SAVED_INFO_SCHEMA = SAVED_INFO_SCHEMA

    @classmethod
    def get_saved_info(cls, metadata_store, resource):
        return metadata_of(metadata_store)
