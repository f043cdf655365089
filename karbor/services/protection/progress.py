"""Live progress of a running operation, and the summary it leaves when it ends.

A long protect used to show nothing but ``protecting``. Every hook now receives a
:class:`ResourceProgress` as its ``progress`` keyword argument (plugins written for the
original take ``**kwargs`` and never see it); a plugin that moves data reports through it::

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        progress = kwargs.get("progress")
        if progress is not None:
            progress.report(bytes_total=estimate, files_total=count)   # when known
            ...
            progress.add(bytes=len(block), files=1)                    # as it goes
        ...
        progress.report(new_bytes=stats.new_bytes, bytes_added=stats.stored_bytes)

Counts are per resource; :class:`OperationProgress` sums them with the resources the hook
graph finished or failed, and writes the result into the operation's own record (the
checkpoint, restore or verification row, column ``progress``) at most once per
``interval`` seconds from a thread of its own, so reporting costs the data path a lock and
an addition, never a database write. The record then shows, additively on the wire::

    "progress": {"resources": {"total", "done", "failed"}, "bytes": {"total", "done"},
                 "files": {"total", "done"}, "percent", "rate_bytes_per_second",
                 "eta_seconds", "updated_at"}
    "summary":  {"duration_seconds", "logical_bytes", "new_bytes", "bytes_added",
                 "dedup_ratio", "compression_ratio",
                 "resources": {"<type>#<id>": {"status", "reason"}}}   (once it ended)

``new_bytes`` counts the data the bank did not hold yet (before compression) and
``bytes_added`` what the bank grew by; ``dedup_ratio`` = logical / new bytes,
``compression_ratio`` = new bytes / bytes added. ``bytes.total`` is an estimate (a
plugin's own, e.g. a directory's size when walked); the percent follows bytes while a
total is known, else finished resources, and reaches 100 only when the operation
succeeded.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import threading
import time
from typing import Any

from sqlalchemy import update

from karbor.db.session import session_scope

LOG = logging.getLogger(__name__)

RATE_WINDOW = 10.0  # seconds of samples the rate (and so the ETA) is computed over


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _key(resource) -> str:
    return f"{resource.type}#{resource.id}"


class ResourceProgress:
    """What one resource's hooks have moved so far; thread-safe, cheap to call often."""

    __slots__ = ("_parent", "key", "bytes_done", "bytes_total", "files_done", "files_total",
                 "bytes_added", "new_bytes")

    def __init__(self, parent: OperationProgress | None, key: str):
        self._parent = parent
        self.key = key
        self.bytes_done = 0
        self.files_done = 0
        self.bytes_total: int | None = None
        self.files_total: int | None = None
        self.bytes_added: int | None = None
        self.new_bytes: int | None = None

    def report(self, *, bytes_done: int | None = None, bytes_total: int | None = None,
               files_done: int | None = None, files_total: int | None = None,
               new_bytes: int | None = None, bytes_added: int | None = None) -> None:
        """Set any of the resource's figures to an absolute value (totals are estimates;
        ``new_bytes`` / ``bytes_added``: the data the bank lacked, before compression, and
        what the bank grew by, for the summary)."""
        lock = self._parent.lock if self._parent is not None else threading.Lock()
        with lock:
            for name, value in (("bytes_done", bytes_done), ("bytes_total", bytes_total),
                                ("files_done", files_done), ("files_total", files_total),
                                ("new_bytes", new_bytes),
                                ("bytes_added", bytes_added)):
                if value is None:
                    continue
                try:
                    setattr(self, name, max(0, int(value)))
                except (TypeError, ValueError, OverflowError):
                    # A plugin's odd figure is no reason to fail its hook.
                    LOG.warning("progress of %s: ignoring %s=%r", self.key, name, value)
        self._touch()

    def add(self, bytes: int = 0, files: int = 0) -> None:  # noqa: A002 - the SDK's words
        """Count ``bytes`` and ``files`` more as done. Called for every chunk or file, so
        it only adds under the lock: the saver looks at the counts on its own schedule."""
        if self._parent is None:
            self.bytes_done += bytes
            self.files_done += files
            return
        with self._parent.lock:
            self.bytes_done += bytes
            self.files_done += files

    def _touch(self) -> None:
        if self._parent is not None:
            self._parent.touch()


class OperationProgress:
    """The progress of one operation, saved into ``model``'s row ``record_id``."""

    def __init__(self, model, record_id: str, resources, interval: float = 1.0,
                 record_resources: bool = False):
        self.model = model
        self.record_id = record_id
        self.interval = interval
        # Only a protect or a copy owns the checkpoint's per-resource status; a delete's
        # progress must not replace the reasons its protect left there.
        self.record_resources = record_resources
        self._save_lock = threading.Lock()
        self._published = 0.0
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self._resources = {_key(r): ResourceProgress(self, _key(r)) for r in resources}
        self.status: dict[str, str] = {}
        self.reason: dict[str, str] = {}
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._changes = 0
        self._count_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.summary: dict[str, Any] | None = None

    # -- what the engine tells ---------------------------------------------------------
    def for_resource(self, resource) -> ResourceProgress:
        key = _key(resource)
        with self.lock:
            found = self._resources.get(key)
            if found is None:
                found = self._resources[key] = ResourceProgress(self, key)
        return found

    def resource_started(self, resource, status: str) -> None:
        with self.lock:
            self.status.setdefault(_key(resource), status)
        self.touch()

    def resource_finished(self, resource, status: str, reason: str | None = None) -> None:
        key = _key(resource)
        with self.lock:
            self.status[key] = status
            if reason:
                self.reason[key] = reason
        self.touch()

    def touch(self) -> None:
        """A status or total changed (rare): counted, so the next tick saves."""
        with self._count_lock:
            self._changes += 1

    def start(self) -> OperationProgress:
        self.save()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"progress-{self.record_id[:8]}")
        self._thread.start()
        return self

    def finish(self, succeeded: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Stop the saver and write the final figures and the summary; returns the
        document saved (the caller may put it in the same transaction as the status)."""
        self._stop.set()
        with self._save_lock:  # a periodic save under way ends before the final write
            pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        doc = self.document(final=True, succeeded=succeeded)
        if extra:
            doc["summary"].update(extra)
        return doc

    # -- the figures -------------------------------------------------------------------
    def document(self, final: bool = False, succeeded: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        with self.lock:
            res = list(self._resources.values())
            bytes_done = sum(r.bytes_done for r in res)
            totals = [r.bytes_total for r in res if r.bytes_total is not None]
            # A resource without a total of its own counts with what it has done.
            bytes_total = (sum(max(r.bytes_total or 0, r.bytes_done) for r in res)
                           if totals else None)
            files_done = sum(r.files_done for r in res)
            ftotals = [r.files_total for r in res if r.files_total is not None]
            files_total = (sum(max(r.files_total or 0, r.files_done) for r in res)
                           if ftotals else None)
            done = sum(1 for s in self.status.values() if s not in _RUNNING)
            failed = sum(1 for s in self.status.values() if s in _FAILED)
            status = dict(self.status)
            reason = dict(self.reason)
            # Each resource weighs the same: finished is whole, running is its share of
            # its own total (0 without one), so a resource that says its size late (or
            # not at all) never makes the percent jump or fall.
            parts = [1.0 if status.get(r.key) not in (None, *_RUNNING)
                     else min(1.0, r.bytes_done / r.bytes_total) if r.bytes_total
                     else 0.0 for r in res]
            added = [r.bytes_added for r in res if r.bytes_added is not None]
            new = [r.new_bytes for r in res if r.new_bytes is not None]
            self._samples.append((now, bytes_done))
            while self._samples and now - self._samples[0][0] > RATE_WINDOW:
                self._samples.popleft()
            first = self._samples[0]
        total = len(res)
        rate = None
        if now - first[0] >= 0.5 and bytes_done >= first[1]:
            rate = (bytes_done - first[1]) / (now - first[0])
        elif bytes_done and now - self.started >= 0.5:
            rate = bytes_done / (now - self.started)
        if final and succeeded:
            percent = 100.0
        elif parts:
            percent = min(99.9, max(self._published, 100.0 * sum(parts) / len(parts)))
            self._published = percent
        else:
            percent = None
        eta = None
        if not final and bytes_total and rate:
            eta = round(max(0.0, bytes_total - bytes_done) / rate, 1)
        progress: dict[str, Any] = {
            "resources": {"total": total, "done": min(done, total) if total else done,
                          "failed": failed},
            "bytes": {"total": bytes_total, "done": bytes_done},
            "percent": None if percent is None else round(percent, 1),
            "rate_bytes_per_second": None if rate is None else round(rate, 1),
            "eta_seconds": eta,
            "updated_at": _now_iso(),
        }
        if files_total is not None or files_done:
            progress["files"] = {"total": files_total, "done": files_done}
        doc: dict[str, Any] = {"progress": progress}
        if final:
            bytes_added = sum(added) if added else None
            new_bytes = sum(new) if new else None
            doc["summary"] = {
                "duration_seconds": round(now - self.started, 3),
                "logical_bytes": bytes_done,
                "new_bytes": new_bytes,
                "bytes_added": bytes_added,
                "dedup_ratio": (round(bytes_done / new_bytes, 3) if new_bytes else None),
                "compression_ratio": (round(new_bytes / bytes_added, 3)
                                      if new_bytes and bytes_added else None),
                "resources": {k: {"status": v, "reason": reason.get(k)}
                              for k, v in sorted(status.items())},
            }
        return doc

    # -- saving ------------------------------------------------------------------------
    def _signature(self) -> tuple:
        with self.lock:
            return (sum(r.bytes_done for r in self._resources.values()),
                    sum(r.files_done for r in self._resources.values()), self._changes)

    def _run(self) -> None:
        saved = None
        while not self._stop.wait(self.interval):
            now = self._signature()
            if now == saved:
                continue  # nothing moved: no write
            try:
                with self._save_lock:
                    if self._stop.is_set():
                        return  # the final document is the engine's to write
                    self.save()
                saved = now
            except Exception:
                LOG.warning("could not save the progress of %s %s",
                            getattr(self.model, "__tablename__", self.model), self.record_id,
                            exc_info=True)

    def save(self, doc: dict[str, Any] | None = None) -> None:
        doc = doc if doc is not None else self.document()
        values: dict[str, Any] = {"progress": json.dumps(doc)}
        if self.record_resources:
            with self.lock:
                values["resources_status"] = json.dumps(self.status)
                values["resources_reason"] = json.dumps(self.reason)
        with session_scope(write=True) as session:
            session.execute(update(self.model).where(self.model.id == self.record_id)
                            .values(**values))


_RUNNING = {"protecting", "restoring", "verifying", "copying", "deleting"}
_FAILED = {"error", "fail", "failed", "error-deleting"}


def load(text: str | None) -> dict[str, Any]:
    """The record's progress document (empty for a record that never ran)."""
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
