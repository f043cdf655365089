"""What the S3 and Swift banks share: value encoding, argument checks and writer leases.

Values are stored the way the original stored them in Swift and S3, with an object
metadata item ``serialized``: ``True`` marks a JSON document (every value that is not
``bytes``), ``False`` raw bytes, returned as ``bytes`` (the original JSON-dumped bytes too,
which broke binary data on Python 3).

A lease is one object per bank-plugin instance (``owner_id``) in a lease bucket or
container, holding its expiry time; :meth:`acquire_lease` writes it and starts a daemon
thread that renews it every ``lease_renew_window`` seconds until :meth:`close`.
"""

from __future__ import annotations

import abc
import json
import logging
import threading
import time
import uuid
from typing import Any

from karbor.common import exception
from karbor.services.protection.bank_plugin import BankPlugin, LeasePlugin

LOG = logging.getLogger(__name__)

SERIALIZED = "serialized"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"


def encode_value(value: Any) -> tuple[bytes, bool, str]:
    """``(body, serialized, content_type)`` for a bank value."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), False, BINARY_TYPE
    try:
        return json.dumps(value).encode(), True, JSON_TYPE
    except (TypeError, ValueError) as exc:
        raise exception.BankError(reason=f"value is not JSON serializable: {exc}") from None


def is_serialized(flag: str | None) -> bool:
    return str(flag).strip().lower() == "true"


def decode_value(key: str, body: bytes, serialized: bool) -> Any:
    if not serialized:
        return body
    try:
        return json.loads(body)
    except ValueError as exc:
        raise exception.BankError(reason=f"object {key} is marked serialized but is not "
                                         f"JSON: {exc}") from None


def list_args(limit: int | None, sort_dir: str | None) -> tuple[int | None, bool]:
    """``(limit, reverse)``: a negative or non-integer limit is an error; only ``desc`` reverses."""
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            try:
                limit = int(limit)
            except (TypeError, ValueError):
                raise exception.BankError(reason=f"invalid listing limit {limit!r}") from None
        if limit < 0:
            raise exception.BankError(reason=f"invalid listing limit {limit}")
    return limit, sort_dir == "desc"


LEASE_WINDOW_DEFAULTS = (("lease_expire_window", 600), ("lease_renew_window", 120),
                         ("lease_validity_window", 100))


def lease_windows(section, overrides: dict) -> dict:
    """Lease windows from a bank's option section (or the defaults), then ``overrides``."""
    windows = {name: (section[name] if section is not None else default)
               for name, default in LEASE_WINDOW_DEFAULTS}
    windows.update(overrides)
    return windows


class ObjectStoreBankPlugin(BankPlugin, LeasePlugin):
    """Base of the object-store banks; subclasses store and fetch lease records."""

    def __init__(self, config=None, *, lease_expire_window: int = 600,
                 lease_renew_window: int = 120, lease_validity_window: int = 100):
        super().__init__(config)
        self._owner_id = str(uuid.uuid4())
        self.lease_expire_window = lease_expire_window
        self.lease_renew_window = lease_renew_window
        self.lease_validity_window = lease_validity_window
        self._lease_expires: float | None = None
        self._renewer: threading.Thread | None = None
        self._stop = threading.Event()
        self._lease_lock = threading.Lock()

    def get_owner_id(self, context=None) -> str:
        return self._owner_id

    # -- leases -------------------------------------------------------------------------

    @abc.abstractmethod
    def _write_lease(self, owner_id: str, expires: float) -> None:
        """Store the lease of ``owner_id`` valid until ``expires`` (epoch seconds)."""

    @abc.abstractmethod
    def _read_lease(self, owner_id: str) -> float | None:
        """The expiry time of ``owner_id``'s lease, or None if there is none."""

    @abc.abstractmethod
    def _remove_lease(self, owner_id: str) -> None: ...

    def acquire_lease(self) -> None:
        """Mark this writer alive and keep it so (renewed in the background) until close()."""
        self.renew_lease()
        with self._lease_lock:
            if self._renewer is None or not self._renewer.is_alive():
                self._stop.clear()
                self._renewer = threading.Thread(target=self._renew_loop, daemon=True,
                                                 name=f"bank-lease-{self._owner_id[:8]}")
                self._renewer.start()

    def renew_lease(self) -> None:
        expires = time.time() + self.lease_expire_window
        self._write_lease(self._owner_id, expires)
        self._lease_expires = expires

    def check_lease_validity(self) -> bool:
        """True while the lease still has ``lease_validity_window`` seconds to run."""
        expires = self._read_lease(self._owner_id)
        if expires is None:
            return False
        return time.time() + self.lease_validity_window <= expires

    def is_owner_alive(self, owner_id: str) -> bool:
        """Whether the writer ``owner_id`` (a checkpoint's ``owner_id``) holds a live lease."""
        expires = self._read_lease(owner_id)
        return expires is not None and expires > time.time()

    def _renew_loop(self) -> None:
        interval = max(0.1, float(self.lease_renew_window))
        while not self._stop.wait(interval):
            try:
                self.renew_lease()
            except Exception:
                LOG.exception("could not renew the bank lease of %s", self._owner_id)

    def close(self, release_lease: bool = False) -> None:
        """Stop renewing the lease (and remove it when ``release_lease``)."""
        self._stop.set()
        renewer = self._renewer
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(5)
        self._renewer = None
        if release_lease:
            self._remove_lease(self._owner_id)
            self._lease_expires = None
