"""Writer leases and the collector's lock: small JSON objects kept fresh by a thread.

A writer holds ``writers/<writer_id>`` = ``{"writer_id", "started", "expires", "host",
"pid"}`` from before it reads the index until after its last manifest is written. The
collector treats a lease as live until ``expires + grace`` (``grace`` covers clock skew).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from karbor.common import exception
from karbor.services.protection.chunkstore import bankio, layout
from karbor.services.protection.chunkstore.errors import GCBusy, LeaseExpired

LOG = logging.getLogger(__name__)


class _Renewed:
    """An object in the bank rewritten every ``seconds / 4`` until released."""

    def __init__(self, section, key: str, seconds: float, body: dict):
        self._section = section
        self.key = key
        self.seconds = seconds
        self._body = body
        self.expires = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self) -> None:
        expires = time.time() + self.seconds
        bankio.put(self._section, self.key, {**self._body, "expires": expires})
        self.expires = expires

    def start(self):
        self._write()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"chunkstore-lease-{self.key}")
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.seconds / 4):
            try:
                self._write()
            except Exception:  # noqa: BLE001 - keep trying; check() reports expiry
                LOG.exception("chunk store: could not renew %s", self.key)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._section.delete_object(self.key)
        except exception.BankError:
            LOG.warning("chunk store: could not remove %s; it expires by itself", self.key)


class WriterLease(_Renewed):
    def __init__(self, section, seconds: float):
        self.writer_id = uuid.uuid4().hex
        self.started = time.time()
        super().__init__(section, layout.writer_key(self.writer_id), seconds,
                         {"writer_id": self.writer_id, "started": self.started,
                          "host": socket.gethostname(), "pid": os.getpid()})

    def check(self) -> None:
        """Refuse to commit unless the lease is valid for at least another quarter term."""
        if time.time() > self.expires - self.seconds / 4:
            raise LeaseExpired(writer_id=self.writer_id, expires=self.expires)


def lease_alive(doc, grace: float, now: float | None = None) -> bool:
    if not isinstance(doc, dict):
        return False
    return float(doc.get("expires", 0)) + grace > (time.time() if now is None else now)


def writer_alive(section, writer_id: str, grace: float) -> bool:
    try:
        doc = section.get_object(layout.writer_key(writer_id))
    except exception.BankObjectNotFound:
        return False
    return lease_alive(doc, grace)


def live_writers(section, grace: float) -> list[str]:
    out = []
    for key in section.list_objects(layout.WRITERS):
        writer_id = key[len(layout.WRITERS):]
        if writer_alive(section, writer_id, grace):
            out.append(writer_id)
    return sorted(out)


def remove_dead_writers(section, grace: float) -> int:
    """Delete leases expired for more than a whole extra term (crashed writers)."""
    removed = 0
    for key in section.list_objects(layout.WRITERS):
        try:
            doc = section.get_object(key)
        except exception.BankObjectNotFound:
            continue
        seconds = float(doc.get("expires", 0)) - float(doc.get("started", 0)) \
            if isinstance(doc, dict) else 0
        if not lease_alive(doc, grace + max(seconds, 0)):
            section.delete_object(key)
            removed += 1
    return removed


class GCLock(_Renewed):
    """Best effort mutual exclusion of collectors: write, wait, read back.

    The bank has no conditional write, so two collectors starting within ``settle`` seconds
    of each other could both believe they hold it; deployments run one collector per bank
    (the protection service's delete path), and this catches the rest.
    """

    def __init__(self, section, seconds: float, grace: float, settle: float = 0.05):
        self.token = uuid.uuid4().hex
        self._grace = grace
        self._settle = settle
        super().__init__(section, layout.GC_LOCK, seconds, {"token": self.token,
                                                            "host": socket.gethostname(),
                                                            "pid": os.getpid()})

    def start(self):
        current = self._read()
        if current is not None and current.get("token") != self.token \
                and lease_alive(current, self._grace):
            raise GCBusy(expires=float(current["expires"]))
        self._write()
        time.sleep(self._settle)
        current = self._read()
        if current is None or current.get("token") != self.token:
            raise GCBusy(expires=float((current or {}).get("expires", 0)))
        return super().start()

    def _read(self):
        try:
            doc = self._section.get_object(self.key)
        except exception.BankObjectNotFound:
            return None
        return doc if isinstance(doc, dict) else None

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        current = self._read()
        if current is not None and current.get("token") == self.token:
            self._section.delete_object(self.key)
