"""What the Cinder protection plugins share: volume statuses, Cinder's errors, deletions.

Cinder is reached through openstacksdk (:func:`karbor.common.clients.connection`) acting as
the caller of the operation (or through its trust, for scheduled operations).  Waits poll
every ``poll_interval`` seconds and give up after ``poll_timeout`` seconds (the original
polled forever).  The generic helpers are :mod:`._cloud`'s.
"""

from __future__ import annotations

from collections.abc import Callable

from oslo_config import cfg

from karbor.services.protection.protection_plugins import _cloud
from karbor.services.protection.protection_plugins._cloud import (  # noqa: F401 - re-exported
    NOT_FOUND,
    connection,
    quietly,
    record,
    status_of,
)

# Volume statuses (as the original): usable, failed, worth waiting for.
VOLUME_USABLE = ("available", "in-use", "error_extending", "error_restoring")
VOLUME_FAILED = ("error", "error_deleting", "deleting", NOT_FOUND)
VOLUME_WAIT = ("attaching", "creating", "backing-up", "restoring-backup", "downloading",
               "detaching", "reserved", "maintenance")
SNAPSHOT_FAILED = ("error", "error_deleting", "deleting", NOT_FOUND)
SNAPSHOT_WAIT = ("creating",)


class CinderError(_cloud.CloudError):
    pass


def plugin_opts(default_interval: float = 5) -> list[cfg.Opt]:
    return _cloud.poll_opts(
        default_interval,
        interval_help="Seconds between two status checks of a Cinder volume, snapshot or "
                      "backup.",
        timeout_help="Seconds after which a Cinder volume, snapshot or backup that is still "
                     "not in the expected status fails the operation.")


def call(what: str, fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)``, OpenStack errors turned into a readable Karbor error."""
    return _cloud.call(what, fn, *args, error=CinderError,
                       not_found="Cannot {what}: Cinder says it does not exist ({exc})",
                       **kwargs)


def wait(getter: Callable[[], object], **kwargs):
    """:func:`._cloud.wait` raising :class:`CinderError`."""
    return _cloud.wait(getter, error=CinderError, **kwargs)


def delete_snapshot(conn, snapshot_id: str, *, interval: float, timeout: float,
                    wait_gone: bool = True) -> None:
    """Delete a snapshot and (by default) wait until Cinder no longer knows it."""
    call(f"delete volume snapshot {snapshot_id}", conn.block_storage.delete_snapshot,
         snapshot_id, ignore_missing=True)
    if wait_gone:
        wait(lambda: conn.block_storage.get_snapshot(snapshot_id), success=(NOT_FOUND,),
             failure=("error_deleting", "error"), waiting=("deleting", "available"),
             interval=interval, timeout=timeout, what=f"volume snapshot {snapshot_id}")


def delete_backup(conn, backup_id: str, *, interval: float, timeout: float,
                  wait_gone: bool = True) -> None:
    call(f"delete volume backup {backup_id}", conn.block_storage.delete_backup,
         backup_id, ignore_missing=True)
    if wait_gone:
        wait(lambda: conn.block_storage.get_backup(backup_id), success=(NOT_FOUND, "deleted"),
             failure=("error_deleting", "error"), waiting=("deleting", "available"),
             interval=interval, timeout=timeout, what=f"volume backup {backup_id}",
             reason=_cloud.attr("fail_reason"))


def delete_volume(conn, volume_id: str, *, interval: float, timeout: float) -> None:
    call(f"delete volume {volume_id}", conn.block_storage.delete_volume, volume_id,
         ignore_missing=True)
    wait(lambda: conn.block_storage.get_volume(volume_id), success=(NOT_FOUND, "deleted"),
         failure=("error_deleting",), waiting=("deleting", "available", "error"),
         interval=interval, timeout=timeout, what=f"volume {volume_id}")


GiB = 1024 ** 3


def reporting(getter: Callable[[], object], progress, size_gib: int | None):
    """``getter`` that also tells ``progress`` what Cinder says of the object's advance:
    its ``progress`` attribute ("42%", snapshots have one) applied to the volume's size."""
    if progress is None or not size_gib:
        return getter

    def get():
        obj = getter()
        text = str(getattr(obj, "progress", None) or "").strip().rstrip("%")
        try:
            percent = float(text)
        except ValueError:
            return obj
        progress.report(bytes_done=int(size_gib * GiB * min(max(percent, 0), 100) / 100))
        return obj
    return get
