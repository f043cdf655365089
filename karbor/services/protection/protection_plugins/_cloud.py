"""What every OpenStack protection plugin needs: a connection, bounded waits, cleanup.

The original polled statuses forever; here every wait has a ``poll_timeout`` (provider file
option of the plugin) so an operation always ends. OpenStack errors become Karbor
exceptions whose message names what Karbor was doing, so a checkpoint's or restore's
reason tells the user what failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import openstack.connection
from oslo_config import cfg

from karbor.common import clients, exception, keystone
from karbor.common.config import CONF

LOG = logging.getLogger(__name__)

NOT_FOUND = "not-found"


class CloudError(exception.KarborException):
    message = "%(reason)s"


def poll_opts(default_interval: float = 5, default_timeout: float = 3600) -> list[cfg.Opt]:
    return [
        cfg.FloatOpt("poll_interval", default=default_interval, min=0.1,
                     help="Seconds between two status checks."),
        cfg.FloatOpt("poll_timeout", default=default_timeout, min=1,
                     help="Seconds after which an object still not in the expected status "
                          "fails the operation (and what was created is removed)."),
    ]


def options(config, group: str, opts: list[cfg.Opt]):
    """The plugin's ``group`` of the provider file (defaults when there is none)."""
    if config is None:
        config = cfg.ConfigOpts()
        config(args=[], default_config_files=[])
    try:
        config.register_opts(opts, group=group)
    except cfg.DuplicateOptError:
        pass
    return config[group]


def connection(context, kwargs: dict | None = None) -> openstack.connection.Connection:
    """The caller's cloud; for a restore with ``restore_target``, that Keystone with the
    password credentials of ``restore_auth`` (the original's restore to another cloud)."""
    kwargs = kwargs or {}
    target = kwargs.get("restore_target")
    if not target:
        return clients.connection(context)
    auth = kwargs.get("restore_auth") or {}
    if (auth.get("type") or "password") != "password" or not auth.get("username") \
            or not auth.get("password"):
        raise exception.InvalidInput(
            reason="restore_target needs restore_auth with type 'password', a username and "
                   "a password")
    scope = {"project_id": auth["project_id"]} if auth.get("project_id") else {
        "project_name": auth.get("project_name") or getattr(context, "project_name", None),
        "project_domain_id": auth.get("project_domain_id") or "default"}
    return openstack.connection.Connection(
        auth_url=target, username=auth["username"], password=auth["password"],
        user_domain_id=auth.get("user_domain_id") or "default", app_name="karbor",
        region_name=CONF[keystone.CLIENTS_GROUP].region_name,
        interface=CONF[keystone.CLIENTS_GROUP].interface, **scope)


def call(what: str, fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` with OpenStack errors turned into a readable Karbor error."""
    try:
        return fn(*args, **kwargs)
    except exception.KarborException:
        raise
    except Exception as exc:
        if clients.is_not_found(exc):
            raise CloudError(reason=f"Cannot {what}: it does not exist ({exc})") from exc
        raise clients.translate(exc, what) from exc


def status_of(getter: Callable[[], Any]) -> tuple[str, Any]:
    try:
        obj = getter()
    except Exception as exc:
        if clients.is_not_found(exc):
            return NOT_FOUND, None
        raise
    return str(getattr(obj, "status", None) or "unknown"), obj


def wait(getter: Callable[[], Any], *, success: Iterable[str], failure: Iterable[str] = (),
         waiting: Iterable[str], interval: float, timeout: float, what: str,
         reason: Callable[[Any], str | None] | None = None) -> Any:
    """Poll until a ``success`` status (returns the object); a failure or unexpected status,
    or ``timeout`` seconds, raise :class:`CloudError` naming the object and its status."""
    success = {s.lower() for s in success}
    failure = {s.lower() for s in failure}
    waiting = {s.lower() for s in waiting}
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, obj = status_of(getter)
        except Exception as exc:
            raise clients.translate(exc, f"check {what}") from exc
        low = status.lower()
        if low in success:
            return obj
        if low in failure or low not in waiting:
            detail = reason(obj) if reason is not None and obj is not None else None
            raise CloudError(reason=f"{what} is {status}" + (f": {detail}" if detail else ""))
        if time.monotonic() + interval > deadline:
            raise CloudError(reason=f"{what} is still {status} after {timeout:g} s "
                                    "(poll_timeout)")
        time.sleep(interval)


def quietly(what: str, fn: Callable, *args, **kwargs) -> None:
    """Best-effort cleanup: logged, never raised (the first error is the one to report)."""
    try:
        fn(*args, **kwargs)
    except Exception:
        LOG.warning("could not %s", what, exc_info=True)


def record(kwargs: dict, key: str, resource_type: str, resource_id: str, status: str,
           reason: str | None = None) -> None:
    """Per-resource status of a restore (``key='restore'``) or verification."""
    recorder = kwargs.get(key)
    if recorder is not None:
        recorder.update_resource_status(resource_type, resource_id, status, reason)


def reason_of(exc: Exception) -> str:
    if isinstance(exc, exception.KarborException):
        return exc.msg
    return f"{type(exc).__name__}: {exc}"


# Statuses of a resource's bank section (the original's values).
PROTECTING = "protecting"
AVAILABLE = "available"
ERROR = "error"
DELETING = "deleting"
DELETED = "deleted"
