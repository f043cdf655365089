"""What every OpenStack protection plugin needs: a connection, bounded waits, cleanup.

The original polled statuses forever; here every wait has a ``poll_timeout`` (provider file
option of the plugin) so an operation always ends. OpenStack errors become Karbor
exceptions whose message names what Karbor was doing, so a checkpoint's or restore's
reason tells the user what failed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import openstack.connection
from oslo_config import cfg

from karbor.common import clients, exception, keystone
from karbor.common.config import CONF
from karbor.services.protection import protection_plugin

LOG = logging.getLogger(__name__)

NOT_FOUND = "not-found"


class CloudError(exception.KarborException):
    message = "%(reason)s"


# ------------------------------------------------------------------------------ options

def poll_opts(default_interval: float = 5, default_timeout: float = 3600, *,
              min_interval: float = 0.1, min_timeout: float = 1,
              interval_help: str = "Seconds between two status checks.",
              timeout_help: str = "Seconds after which an object still not in the expected "
                                  "status fails the operation (and what was created is "
                                  "removed).") -> list[cfg.Opt]:
    """``poll_interval`` and ``poll_timeout``, the options of every plugin that waits."""
    return [
        cfg.FloatOpt("poll_interval", default=default_interval, min=min_interval,
                     help=interval_help),
        cfg.FloatOpt("poll_timeout", default=default_timeout, min=min_timeout,
                     help=timeout_help),
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


# ------------------------------------------------------------------------------ the cloud

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


Translate = Callable[[Exception, str], Exception]


def call(what: str, fn: Callable, *args,
         not_found: str | None = "Cannot {what}: it does not exist ({exc})",
         error: type[exception.KarborException] = CloudError,
         translate: Translate = clients.translate, **kwargs):
    """``fn(*args, **kwargs)`` with OpenStack errors turned into a readable Karbor error.

    A not-found error becomes ``error`` with the ``not_found`` text (``{what}``, ``{exc}``)
    or, with ``not_found=None``, is raised as it is (the caller knows what was missing).
    """
    try:
        return fn(*args, **kwargs)
    except exception.KarborException:
        raise
    except Exception as exc:
        if clients.is_not_found(exc):
            if not_found is None:
                raise
            raise error(reason=not_found.format(what=what, exc=exc)) from exc
        raise translate(exc, what) from exc


def status_of(getter: Callable[[], Any]) -> tuple[str, Any]:
    """(status, object); ``not-found`` when the service no longer knows it."""
    try:
        obj = getter()
    except Exception as exc:
        if clients.is_not_found(exc):
            return NOT_FOUND, None
        raise
    return str(getattr(obj, "status", None) or "unknown"), obj


def attr(name: str) -> Callable[[Any], Any]:
    """A ``reason`` for :func:`wait`: the object's ``name`` attribute (``fail_reason``)."""
    return lambda obj: getattr(obj, name, None)


def wait(getter: Callable[[], Any], *, success: Iterable[str], failure: Iterable[str] = (),
         waiting: Iterable[str], interval: float, timeout: float, what: str,
         reason: Callable[[Any], str | None] | None = None,
         error: type[exception.KarborException] = CloudError,
         translate: Translate = clients.translate, timed_out: str = "") -> Any:
    """Poll until a ``success`` status (returns the object); a failure or unexpected status,
    or ``timeout`` seconds, raise ``error`` naming the object and its status (a timeout's
    message starts with ``timed_out``)."""
    success = {s.lower() for s in success}
    failure = {s.lower() for s in failure}
    waiting = {s.lower() for s in waiting}
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, obj = status_of(getter)
        except Exception as exc:
            raise translate(exc, f"check {what}") from exc
        low = status.lower()
        if low in success:
            return obj
        if low in failure or low not in waiting:
            detail = reason(obj) if reason is not None and obj is not None else None
            raise error(reason=f"{what} is {status}" + (f": {detail}" if detail else ""))
        if time.monotonic() + interval > deadline:
            raise error(reason=f"{timed_out}{what} is still {status} after {timeout:g} s "
                               "(poll_timeout)")
        time.sleep(interval)


def quietly(what: str, fn: Callable, *args, **kwargs) -> bool:
    """Best-effort cleanup: logged, never raised (the first error is the one to report).
    False when it failed: the caller then keeps its record of the object, so that deleting
    the checkpoint later removes it (Cinder refuses to delete a backup still ``creating``)."""
    try:
        fn(*args, **kwargs)
    except Exception:
        LOG.warning("could not %s", what, exc_info=True)
        return False
    return True


# ------------------------------------------------------------------------------ records

def record(kwargs: dict, key: str, resource_type: str, resource_id: str, status: str,
           reason: str | None = None) -> None:
    """Per-resource status of a restore (``key='restore'``) or verification (``'verify'``)."""
    recorder = kwargs.get(key)
    if recorder is not None:
        recorder.update_resource_status(resource_type, resource_id, status, reason)


def reason_of(exc: Exception) -> str:
    if isinstance(exc, exception.KarborException):
        return exc.msg
    return f"{type(exc).__name__}: {exc}"


def message(exc: Exception) -> str:
    return getattr(exc, "msg", None) or str(exc)


def get_object(section, key: str, default=None):
    """The ``key`` object of a bank section, ``default`` when there is none."""
    try:
        return section.get_object(key)
    except exception.BankObjectNotFound:
        return default


def metadata_of(section) -> dict:
    return get_object(section, "metadata") or {}


def drop(section, key: str) -> None:
    with contextlib.suppress(exception.BankObjectNotFound):
        section.delete_object(key)


# Statuses of a resource's bank section (the original's values).
PROTECTING = "protecting"
AVAILABLE = "available"
ERROR = "error"
DELETING = "deleting"
DELETED = "deleted"


# ------------------------------------------------------------------------------ plugins

class Operation(protection_plugin.Operation):
    """An operation of a plugin, given the plugin's options (its provider file group)."""

    def __init__(self, opts=None):
        self._opts = opts

    def _wait_kw(self) -> dict:
        return {"interval": self._opts.poll_interval, "timeout": self._opts.poll_timeout}


class StatusVerify(Operation):
    """Verify of a plugin whose checkpoint names a cloud object (a backup, a snapshot): the
    object must be in the ``EXPECTED`` status; the resource's status goes to the
    verification."""

    EXPECTED = "available"
    ERROR: type[exception.KarborException] = CloudError
    #: "Cannot check {SAVED} of {NOUN} <id>" and "{NOUN} <id>: <BAD>"
    SAVED = "the backup"
    NOUN = "volume"
    BAD = "The status of {SAVED} {id} is {status}."
    explain: Callable[[Exception], str] = staticmethod(str)

    def check(self, checkpoint, resource, context) -> tuple[str, str]:
        """(id of the saved object, its status)."""
        raise NotImplementedError

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        try:
            saved_id, status = self.check(checkpoint, resource, context)
        except Exception as exc:
            reason = f"Cannot check {self.SAVED} of {self.NOUN} {resource.id}: " \
                     f"{self.explain(exc)}"
            record(kwargs, "verify", resource.type, resource.id, "error", reason)
            raise self.ERROR(reason=reason) from exc
        if status != self.EXPECTED:
            reason = self.BAD.format(id=saved_id, status=status)
            record(kwargs, "verify", resource.type, resource.id, status, reason)
            raise self.ERROR(reason=f"{self.NOUN} {resource.id}: {reason}")
        record(kwargs, "verify", resource.type, resource.id, "available")


class SavedDelete(Operation):
    """Delete of a plugin whose checkpoint names cloud objects: :meth:`remove` deletes them,
    then the bank objects ``DROP`` go; a failure makes the section an error."""

    ERROR: type[exception.KarborException] = CloudError
    #: the reason's start, "Error deleting {WHAT} <id>: ..."
    WHAT = "the backup of volume"
    DROP: tuple[str, ...] = ("metadata",)
    explain: Callable[[Exception], str] = staticmethod(str)

    def remove(self, section, context) -> None:
        raise NotImplementedError

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", DELETING)
        try:
            self.remove(section, context)
        except Exception as exc:
            section.update_object("status", ERROR)
            raise self.ERROR(reason=f"Error deleting {self.WHAT} {resource.id}: "
                                    f"{self.explain(exc)}") from exc
        for key in self.DROP:
            drop(section, key)
        section.update_object("status", DELETED)


class DefinitionProtect(Operation):
    """Protect of a plugin that keeps only a definition in the bank: what ``describe(conn,
    resource_id)`` reads from the cloud, as the ``metadata`` object."""

    @staticmethod
    def describe(conn, resource_id: str) -> dict:
        raise NotImplementedError

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", PROTECTING)
        try:
            metadata = self.describe(connection(context), resource.id)
        except Exception:
            section.update_object("status", ERROR)
            raise
        section.update_object("metadata", metadata)
        section.update_object("status", AVAILABLE)


class DefinitionVerify(Operation):
    """Verify of a plugin that keeps only a definition in the bank: it must be there."""

    #: what is missing, for the reason ("the server's definition")
    what = "the definition"

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        try:
            status = section.get_object("status")
            section.get_object("metadata")
        except Exception:
            status = None
        if status != AVAILABLE:
            reason = f"{self.what} is not in the bank (status {status})"
            record(kwargs, "verify", resource.type, resource.id, "error", reason)
            raise CloudError(reason=reason)
        record(kwargs, "verify", resource.type, resource.id, "available")


class DefinitionDelete(Operation):
    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", DELETING)
        section.delete_object("metadata")
        section.update_object("status", DELETED)


class DefinitionCopy(Operation):
    """The definition is bank data the engine copies; nothing in the cloud to copy."""

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        kwargs["checkpoint_copy"].get_resource_bank_section(resource.id).update_object(
            "status", AVAILABLE)


class Plugin(protection_plugin.ProtectionPlugin):
    """A protection plugin declared by class attributes.

    ``OPERATIONS`` maps ``protect``/``restore``/``verify``/``copy``/``delete`` to the
    :class:`Operation` class made for it (given :meth:`_operation_arg`, the plugin's
    options by default); the ``*_SCHEMA`` attributes are what the schema methods return.
    """

    _SUPPORT_RESOURCE_TYPES: list[str] = []
    #: the provider file group of the plugin's options, and its options (None: none)
    GROUP: str | None = None
    OPTS: Callable[[], list[cfg.Opt]] | None = None
    OPERATIONS: dict[str, type[protection_plugin.Operation]] = {}
    OPTIONS_SCHEMA: dict = {}
    RESTORE_SCHEMA: dict = {}
    VERIFY_SCHEMA: dict = {}
    SAVED_INFO_SCHEMA: dict = {}
    #: Only usable with a cloud (Keystone mode): providers using it are hidden otherwise.
    needs_cloud = True

    def __init__(self, config=None):
        super().__init__(config)
        self._opts = options(config, self.GROUP, type(self).OPTS()) \
            if self.GROUP and type(self).OPTS else None

    def _operation_arg(self):
        return self._opts

    def _operation(self, name: str) -> protection_plugin.Operation:
        op = self.OPERATIONS.get(name)
        if op is None:
            raise NotImplementedError
        return op(self._operation_arg())

    def get_protect_operation(self, resource):
        return self._operation("protect")

    def get_restore_operation(self, resource):
        return self._operation("restore")

    def get_verify_operation(self, resource):
        return self._operation("verify")

    def get_copy_operation(self, resource):
        return self._operation("copy")

    def get_delete_operation(self, resource):
        return self._operation("delete")

    @classmethod
    def get_supported_resources_types(cls):
        return list(cls._SUPPORT_RESOURCE_TYPES)

    @classmethod
    def get_options_schema(cls, resource_type):
        return cls.OPTIONS_SCHEMA

    @classmethod
    def get_restore_schema(cls, resource_type):
        return cls.RESTORE_SCHEMA

    @classmethod
    def get_verify_schema(cls, resource_type):
        return cls.VERIFY_SCHEMA

    @classmethod
    def get_saved_info_schema(cls, resource_type):
        return cls.SAVED_INFO_SCHEMA
