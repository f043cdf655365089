"""What the Cinder protection plugins share: options, a bounded status poll, the client.

Cinder is reached through openstacksdk (:func:`karbor.common.clients.connection`) acting as
the caller of the operation (or through its trust, for scheduled operations).  Waits poll
every ``poll_interval`` seconds and give up after ``poll_timeout`` seconds (the original
polled forever).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from oslo_config import cfg

from karbor.common import clients, exception

LOG = logging.getLogger(__name__)

NOT_FOUND = "not-found"

# Volume statuses (as the original): usable, failed, worth waiting for.
VOLUME_USABLE = ("available", "in-use", "error_extending", "error_restoring")
VOLUME_FAILED = ("error", "error_deleting", "deleting", NOT_FOUND)
VOLUME_WAIT = ("attaching", "creating", "backing-up", "restoring-backup", "downloading",
               "detaching", "reserved", "maintenance")
SNAPSHOT_FAILED = ("error", "error_deleting", "deleting", NOT_FOUND)
SNAPSHOT_WAIT = ("creating",)


class CinderError(exception.KarborException):
    message = "%(reason)s"


def plugin_opts(default_interval: float = 5) -> list[cfg.Opt]:
    return [
        cfg.FloatOpt("poll_interval", default=default_interval, min=0.1,
                     help="Seconds between two status checks of a Cinder volume, snapshot or "
                          "backup."),
        cfg.FloatOpt("poll_timeout", default=3600, min=1,
                     help="Seconds after which a Cinder volume, snapshot or backup that is "
                          "still not in the expected status fails the operation."),
    ]


def register(config, group: str, opts: list[cfg.Opt]):
    """The plugin's options of ``group`` in the provider file (defaults without one)."""
    if config is None:
        config = cfg.ConfigOpts()
        config(args=[], default_config_files=[])
    try:
        config.register_opts(opts, group=group)
    except cfg.DuplicateOptError:
        pass
    return config[group]


def as_bool(value, default: bool = False) -> bool:
    """Plan parameters may be JSON booleans or the original's strings ("False" is false)."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


def connection(context):
    return clients.connection(context)


def call(what: str, fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)``, OpenStack errors turned into a readable Karbor error."""
    try:
        return fn(*args, **kwargs)
    except exception.KarborException:
        raise
    except Exception as exc:
        if clients.is_not_found(exc):
            raise CinderError(reason=f"Cannot {what}: Cinder says it does not exist "
                                     f"({exc})") from exc
        raise clients.translate(exc, what) from exc


def status_of(getter: Callable[[], object]) -> tuple[str, object | None]:
    """(status, object) of a Cinder object, ``not-found`` when Cinder no longer knows it."""
    try:
        obj = getter()
    except Exception as exc:
        if clients.is_not_found(exc):
            return NOT_FOUND, None
        raise
    return (getattr(obj, "status", None) or "unknown"), obj


def wait(getter: Callable[[], object], *, success: Iterable[str], failure: Iterable[str],
         waiting: Iterable[str], interval: float, timeout: float, what: str,
         reason_attr: str | None = None) -> object | None:
    """Poll until the object is in a ``success`` status and return it; a ``failure`` status,
    an unexpected one or ``timeout`` seconds raise :class:`CinderError`."""
    success, failure, waiting = set(success), set(failure), set(waiting)
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, obj = status_of(getter)
        except Exception as exc:
            raise clients.translate(exc, f"check {what}") from exc
        if status in success:
            return obj
        if status in failure or status not in waiting:
            detail = getattr(obj, reason_attr, None) if reason_attr and obj is not None \
                else None
            raise CinderError(reason=f"{what} is {status}"
                                     + (f": {detail}" if detail else ""))
        if time.monotonic() >= deadline:
            raise CinderError(reason=f"{what} is still {status} after {timeout:g} s")
        time.sleep(interval)


def quietly(what: str, fn: Callable, *args, **kwargs) -> None:
    """Best-effort cleanup: failures are logged, never raised."""
    try:
        fn(*args, **kwargs)
    except Exception:
        LOG.warning("could not %s", what, exc_info=True)


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
             reason_attr="fail_reason")


def delete_volume(conn, volume_id: str, *, interval: float, timeout: float) -> None:
    call(f"delete volume {volume_id}", conn.block_storage.delete_volume, volume_id,
         ignore_missing=True)
    wait(lambda: conn.block_storage.get_volume(volume_id), success=(NOT_FOUND, "deleted"),
         failure=("error_deleting",), waiting=("deleting", "available", "error"),
         interval=interval, timeout=timeout, what=f"volume {volume_id}")


def record(kwargs: dict, key: str, resource_type: str, resource_id: str, status: str,
           reason: str | None = None) -> None:
    recorder = kwargs.get(key)
    if recorder is not None:
        recorder.update_resource_status(resource_type, resource_id, status, reason)
