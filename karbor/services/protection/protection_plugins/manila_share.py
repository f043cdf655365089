"""OS::Manila::Share protected by Manila snapshots (``karbor-share-protection-plugin``).

As the original's ``ManilaSnapshotProtectionPlugin``: protect (main hook) waits for the
share to be usable, snapshots it (``snapshot_name``, ``description``, ``force``) and waits
for the snapshot to be ``available``; the resource's bank section records
``metadata`` = ``share_id, size, share_proto, share_type, share_network_id, snapshot_id``.
Restore creates a new share from the snapshot (``restore_name``, ``restore_description``),
waits for it, records its status in the restore (``OS::Manila::Share#<new id>``) and in
``new_resources``.  Verify checks the snapshot is ``available``; delete deletes it.  The
data stays in Manila, next to the share: a snapshot is not a backup.

Unlike the original, every wait is bounded (``[manila_snapshot_plugin] poll_interval,
poll_timeout``), and what a failed operation created is removed: a snapshot whose share
or creation failed, a half-restored share, and (through ``revert``) the snapshots and
shares made for the other resources of a failed checkpoint or restore.  A snapshot Manila
refuses to delete yet (still ``creating`` after a timeout) stays recorded in the bank, so
deleting the checkpoint removes it later, and the error reason says so.

Manila is reached through openstacksdk's ``shared_file_system`` proxy acting as the caller
(or its trust); the snapshot is created with a plain POST through that proxy because the
SDK's snapshot resource drops ``force``.

The bounded poll, calls and records are :mod:`._cloud`'s; :class:`PluginError`, the options
and the Manila wording of waits and calls here are shared with ``trove_database``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from openstack import exceptions as sdk_exc
from oslo_config import cfg

from karbor.common import clients, constants
from karbor.services.protection.protection_plugins import _cloud, _params
from karbor.services.protection.protection_plugins._cloud import (  # noqa: F401 - re-exported
    NOT_FOUND,
    drop,
    message,
    metadata_of,
    record,
    status_of,
)

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = constants.SHARE_RESOURCE_TYPE
GROUP = "manila_snapshot_plugin"

# Share statuses (the original's sets, plus the newer creating_from_snapshot).
SHARE_FAILED = ("error", "error_deleting", "deleting", NOT_FOUND, "extending_error",
                "shrinking_error", "reverting_error", "manage_error", "unmanage_error")
SHARE_WAIT = ("creating", "creating_from_snapshot", "reverting", "extending", "shrinking")
SNAPSHOT_FAILED = ("error", "error_deleting", "deleting", NOT_FOUND)
SNAPSHOT_WAIT = ("creating",)

OPTIONS_SCHEMA = {
    "title": "Share Protection Options",
    "type": "object",
    "properties": {
        "snapshot_name": {"type": "string", "title": "Snapshot Name",
                          "description": "The name of the snapshot."},
        "description": {"type": "string", "title": "Description",
                        "description": "The description of the snapshot."},
        "force": {"type": "boolean", "title": "Force",
                  "description": "Optional flag to indicate whether to snapshot a share "
                                 "even if it's busy.",
                  "default": False},
    },
    "required": ["snapshot_name", "force"],
}

RESTORE_SCHEMA = {
    "title": "Share Protection Restore",
    "type": "object",
    "properties": {
        "restore_name": {"type": "string", "title": "Restore Share Name",
                         "description": "The name of the restored share (default "
                                        "<checkpoint id>@<share id>)."},
        "restore_description": {"type": "string", "title": "Restore Share Description",
                                "description": "The description of the restored share."},
    },
}

VERIFY_SCHEMA = {"title": "Share Protection Verify", "type": "object", "properties": {}}

SAVED_INFO_SCHEMA = {
    "title": "Share Protection Saved Info",
    "type": "object",
    "properties": {
        "share_id": {"type": "string", "title": "Share ID"},
        "snapshot_id": {"type": "string", "title": "Snapshot ID"},
        "size": {"type": "integer", "title": "Size (GiB)"},
        "share_proto": {"type": "string", "title": "Share protocol"},
        "share_type": {"type": "string", "title": "Share type"},
        "share_network_id": {"type": "string", "title": "Share network ID"},
    },
}


# ------------------------------------------------------------------ shared with trove_database

class PluginError(_cloud.CloudError):
    pass


def plugin_opts(service: str, default_interval: float = 5) -> list[cfg.Opt]:
    return _cloud.poll_opts(
        default_interval, min_interval=0.05, min_timeout=0.1,
        interval_help=f"Seconds between two status checks of a {service} object.",
        timeout_help=f"Seconds after which a {service} object still not in the expected "
                     "status fails the operation (the original waited forever).")


def wait(getter: Callable[[], object], **kwargs):
    """:func:`._cloud.wait` raising :class:`PluginError` (a timeout says "timed out")."""
    return _cloud.wait(getter, error=PluginError, timed_out="timed out: ", **kwargs)


def call(what: str, fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` with service errors turned into readable Karbor errors."""
    return _cloud.call(what, fn, *args, error=PluginError,
                       not_found="cannot {what}: it does not exist ({exc})", **kwargs)


# ------------------------------------------------------------------ Manila calls

def _sfs(context):
    return clients.connection(context).shared_file_system


def _create_snapshot(sfs, share_id: str, name: str, description: str | None,
                     force: bool) -> str:
    body = {"snapshot": {"share_id": share_id, "name": name, "description": description,
                         "force": force}}

    def post():
        resp = sfs.post("/snapshots", json=body, headers={"Accept": "application/json"},
                        raise_exc=False)
        sdk_exc.raise_from_response(resp)
        return resp.json()["snapshot"]["id"]

    return call(f"snapshot share {share_id}", post)


def delete_snapshot(sfs, snapshot_id: str, *, interval: float, timeout: float) -> None:
    """Delete a snapshot and wait until Manila no longer knows it."""
    call(f"delete share snapshot {snapshot_id}", sfs.delete_share_snapshot, snapshot_id,
         ignore_missing=True)
    wait(lambda: sfs.get_share_snapshot(snapshot_id), success=(NOT_FOUND,),
         failure=("error_deleting",), waiting=("deleting", "available", "error"),
         interval=interval, timeout=timeout, what=f"share snapshot {snapshot_id}")


def delete_share(sfs, share_id: str, *, interval: float, timeout: float) -> None:
    call(f"delete share {share_id}", sfs.delete_share, share_id, ignore_missing=True)
    wait(lambda: sfs.get_share(share_id), success=(NOT_FOUND,), failure=("error_deleting",),
         waiting=("deleting", "available", "error", "creating"), interval=interval,
         timeout=timeout, what=f"share {share_id}")


# ------------------------------------------------------------------ operations

class _Base(_cloud.Operation):
    def _remove_snapshot(self, context, section, snapshot_id: str) -> str | None:
        """Delete the snapshot; None when done, else why it stays (its id stays in the
        bank so that deleting the checkpoint removes it later)."""
        try:
            delete_snapshot(_sfs(context), snapshot_id, **self._wait_kw())
        except Exception as exc:
            LOG.warning("could not remove share snapshot %s: %s", snapshot_id, exc)
            return (f"share snapshot {snapshot_id} could not be removed yet ({message(exc)}); "
                    "deleting the checkpoint removes it")
        drop(section, "metadata")
        return None


class _Protect(_Base):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", constants.CHECKPOINT_STATUS_PROTECTING)
        snapshot_id = None
        try:
            sfs = _sfs(context)
            share = wait(lambda: sfs.get_share(resource.id), success=("available",),
                         failure=SHARE_FAILED, waiting=SHARE_WAIT,
                         what=f"share {resource.id}", **self._wait_kw())
            snapshot_id = _create_snapshot(
                sfs, resource.id,
                name=parameters.get("snapshot_name") or f"karbor-{checkpoint.id}",
                description=parameters.get("description")
                or f"Karbor checkpoint {checkpoint.id}",
                force=_params.flag(parameters, "force"))
            # recorded at once: a crash or a failed cleanup still leaves it findable
            section.update_object("metadata", {
                "share_id": resource.id, "size": share.size,
                "share_proto": share.share_protocol, "share_type": share.share_type,
                "share_network_id": share.share_network_id, "snapshot_id": snapshot_id})
            wait(lambda: sfs.get_share_snapshot(snapshot_id), success=("available",),
                 failure=SNAPSHOT_FAILED, waiting=SNAPSHOT_WAIT,
                 what=f"snapshot {snapshot_id} of share {resource.id}", **self._wait_kw())
        except Exception as exc:
            reason = f"Error creating snapshot for share {resource.id}: {message(exc)}"
            if snapshot_id:
                left = self._remove_snapshot(context, section, snapshot_id)
                if left:
                    reason += f"; {left}"
            section.update_object("status", constants.CHECKPOINT_STATUS_ERROR)
            raise PluginError(reason=reason) from exc
        section.update_object("status", constants.CHECKPOINT_STATUS_AVAILABLE)

    def revert(self, checkpoint, resource, context, parameters, hook=None, **kwargs):
        """Another resource failed: the checkpoint is an error, remove this snapshot."""
        section = checkpoint.get_resource_bank_section(resource.id)
        snapshot_id = metadata_of(section).get("snapshot_id")
        if snapshot_id:
            self._remove_snapshot(context, section, snapshot_id)
        section.update_object("status", constants.CHECKPOINT_STATUS_ERROR)


def _saved(checkpoint, resource) -> dict:
    saved = metadata_of(checkpoint.get_resource_bank_section(resource.id))
    if not saved.get("snapshot_id"):
        raise PluginError(reason=f"no snapshot of share {resource.id} in the checkpoint")
    return saved


class _Restore(_Base):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        new_id = None
        sfs = None
        try:
            saved = _saved(checkpoint, resource)
            sfs = _sfs(context)
            attrs = {"share_protocol": saved.get("share_proto"), "size": saved.get("size"),
                     "snapshot_id": saved["snapshot_id"],
                     "name": parameters.get("restore_name")
                     or f"{checkpoint.id}@{resource.id}"}
            if parameters.get("restore_description"):
                attrs["description"] = parameters["restore_description"]
            for key in ("share_type", "share_network_id"):
                if saved.get(key):
                    attrs[key] = saved[key]
            new_id = call(f"create a share from snapshot {saved['snapshot_id']}",
                          sfs.create_share, **attrs).id
            record(kwargs, "restore", resource.type, new_id, "restoring")
            wait(lambda: sfs.get_share(new_id), success=("available",), failure=SHARE_FAILED,
                 waiting=SHARE_WAIT,
                 what=f"share {new_id} created from snapshot {saved['snapshot_id']}",
                 **self._wait_kw())
        except Exception as exc:
            reason = f"Error restoring share {resource.id}: {message(exc)}"
            if new_id:
                try:
                    delete_share(sfs, new_id, **self._wait_kw())
                except Exception as cleanup:
                    reason += f"; the new share {new_id} could not be removed: " \
                              f"{message(cleanup)}"
            record(kwargs, "restore", resource.type, new_id or resource.id, "error", reason)
            raise PluginError(reason=reason) from exc
        kwargs.get("new_resources", {})[resource.id] = new_id
        record(kwargs, "restore", resource.type, new_id, "available")

    def revert(self, checkpoint, resource, context, parameters, hook=None, **kwargs):
        """Another resource failed: the restore failed, remove the share made here."""
        new_id = kwargs.get("new_resources", {}).get(resource.id)
        if not new_id:
            return
        try:
            delete_share(_sfs(context), new_id, **self._wait_kw())
        except Exception as exc:
            record(kwargs, "restore", resource.type, new_id, "error",
                   f"the restore failed and share {new_id} could not be removed: "
                   f"{message(exc)}")
            return
        kwargs["new_resources"].pop(resource.id, None)
        record(kwargs, "restore", resource.type, new_id, "deleted",
               "removed because the restore failed")


class _Verify(_cloud.StatusVerify):
    ERROR = PluginError
    SAVED, NOUN = "the snapshot", "share"
    BAD = "The status of share snapshot {id} is {status}."
    explain = staticmethod(message)

    def check(self, checkpoint, resource, context):
        snapshot_id = _saved(checkpoint, resource)["snapshot_id"]
        sfs = _sfs(context)
        return snapshot_id, status_of(lambda: sfs.get_share_snapshot(snapshot_id))[0]


class _Delete(_cloud.SavedDelete):
    ERROR = PluginError
    WHAT = "the snapshot of share"
    explain = staticmethod(message)

    def remove(self, section, context):
        snapshot_id = metadata_of(section).get("snapshot_id")
        if snapshot_id:
            delete_snapshot(_sfs(context), snapshot_id, **self._wait_kw())


def _opts():
    return plugin_opts("Manila share or snapshot")


class ManilaSnapshotProtectionPlugin(_cloud.Plugin):
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
