"""Garbage collection: delete the chunks no manifest references, safely beside writers.

Two phases, with a durable record in between:

* **condemn** — mark (read every manifest), then choose the packs to retire: packs none of
  whose chunks are referenced, packs mostly dead (their live chunks are first copied into
  new packs: *repack*), and packs no index lists (orphans of crashed writers; but when a
  referenced chunk is in no index, those packs are indexed again from their headers first,
  and the run is refused if that does not find it). They are
  written to a record ``gc/condemned/<id>``; *then* the live writer leases are listed and
  added to the record as ``writers``.
* **sweep** — a record is ripe when none of its writers still holds a live lease. Only
  then, with the index and the manifests read afresh, each of its packs is deleted if every
  chunk in it is unreferenced or also stored in a pack that no record condemns; otherwise
  it is kept. Index files that list deleted packs are replaced first (new file, then the
  old ones removed), the packs deleted after, the record last; a crash anywhere in between
  is finished by the next run.

Why a writer never loses a chunk it relies on. A writer writes its lease before it reads
the condemned records and the index, and writes its manifests before it drops its lease.
Take a pack P condemned by record R. (1) A writer whose lease was listed into R may have
chosen to reuse a chunk of P before R existed: R waits until that writer is gone, and the
fresh mark then sees its manifests, so a chunk they use keeps P unless a copy lives in a
pack no record condemns. (2) A writer not listed into R wrote its lease after R was written
(R is written before the leases are listed), hence read R: it treats P's chunks as absent
and stores them again, in its own packs. (3) A writer's packs reach the index before its
manifests do, and the index only ever loses a pack after the pack was condemned and swept.
(4) A writer whose lease lapses (a frozen or cut-off process) commits nothing more: it
checks the lease, with a quarter term to spare, before each index file and manifest.
Leases are compared with the collector's clock plus ``lease_grace`` for skew. Collectors
exclude each other with a lock object (best effort: the bank has no conditional write).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from karbor.common import exception
from karbor.services.protection.chunkstore import bankio, blob, index, layout, pack
from karbor.services.protection.chunkstore.errors import (
    ChunkStoreError,
    CorruptionError,
    ManifestNotFound,
)
from karbor.services.protection.chunkstore.lease import (
    GCLock,
    live_writers,
    remove_dead_writers,
    writer_alive,
)

LOG = logging.getLogger(__name__)


@dataclass
class Record:
    record_id: str
    packs: set[bytes]
    created: float
    writers: list[str] | None = None

    def to_json(self) -> dict:
        doc = {"created": self.created, "packs": sorted(p.hex() for p in self.packs)}
        if self.writers is not None:
            doc["writers"] = self.writers
        return doc


def load_records(section) -> list[Record]:
    records = []
    for key in section.list_objects(layout.CONDEMNED):
        try:
            doc = section.get_object(key)
        except exception.BankObjectNotFound:
            continue
        records.append(Record(key[len(layout.CONDEMNED):],
                              {bytes.fromhex(p) for p in doc["packs"]},
                              float(doc.get("created", 0)), doc.get("writers")))
    return records


def condemned_packs(section) -> set[bytes]:
    out: set[bytes] = set()
    for r in load_records(section):
        out |= r.packs
    return out


@dataclass
class GCReport:
    manifests: int = 0
    referenced_chunks: int = 0
    missing_chunks: int = 0
    reindexed_packs: int = 0
    condemned_packs: int = 0
    repacked_packs: int = 0
    deleted_packs: int = 0
    deleted_bytes: int = 0
    kept_packs: int = 0
    pending_packs: int = 0
    waiting_for: list[str] = field(default_factory=list)
    index_files_written: int = 0
    index_files_deleted: int = 0
    leases_removed: int = 0

    def to_json(self) -> dict:
        return dict(self.__dict__)


class GarbageCollector:
    def __init__(self, store, repack_threshold: float = 0.5, consolidate_over: int = 32):
        self._store = store
        self._section = store.section
        self._repack_threshold = repack_threshold
        self._consolidate_over = consolidate_over
        self._referenced: set[bytes] = set()

    def run(self) -> GCReport:
        report = GCReport()
        tuning = self._store.tuning
        lock = GCLock(self._section, tuning.lease_seconds, tuning.lease_grace).start()
        try:
            self._sweep(report)
            self._condemn(report)
            self._sweep(report)
            report.leases_removed = remove_dead_writers(self._section, tuning.lease_grace)
        finally:
            lock.release()
        report.waiting_for = sorted(set(report.waiting_for))  # as of the last sweep
        return report

    # ------------------------------------------------------------------ mark

    def _fresh(self, report: GCReport) -> None:
        """References, then the index, as the bank has them now; refuse on anything
        unreadable. Manifests first: the index files a manifest needs were written before
        it, so the index read next covers every chunk referenced."""
        store = self._store
        referenced: set[bytes] = set()
        names = store.list_manifests()

        def chunk_ids(name: str) -> set[bytes]:
            try:
                return store.get_manifest(name).chunk_ids()
            except ManifestNotFound:
                return set()  # deleted meanwhile

        try:
            for ids in store.io_pool.map(chunk_ids, names):
                referenced |= ids
        except CorruptionError as e:
            raise ChunkStoreError(reason=f"garbage collection refused: {e.reason}") from None
        report.manifests = len(names)
        report.referenced_chunks = len(referenced)
        self._referenced = referenced
        store.refresh_index()
        if store.index.bad_files:
            raise ChunkStoreError(reason="garbage collection refused: unreadable index files "
                                         f"{sorted(store.index.bad_files)}")
        missing = self._unindexed()
        if missing:
            # An index file was lost or removed: the packs it listed now look like a
            # crashed writer's orphans, and collecting them would destroy data that
            # manifests still use. Their own headers say what they hold.
            LOG.error("chunk store: %d referenced chunks are in no index; rebuilding the "
                      "index from the headers of the packs no index lists", len(missing))
            report.reindexed_packs += self._reindex_unlisted()
            missing = self._unindexed()
        report.missing_chunks = len(missing)
        if missing:
            example = min(missing).hex()
            raise ChunkStoreError(reason=(
                f"garbage collection refused: {len(missing)} referenced chunks are in no "
                f"index nor in any pack's header (e.g. {example}); nothing was deleted"))

    def _unindexed(self) -> set[bytes]:
        idx = self._store.index
        return {cid for cid in self._referenced if idx.lookup(cid) is None}

    def _reindex_unlisted(self) -> int:
        """Write an index file for the intact packs under ``packs/`` that no index file
        lists, from their sealed headers (which a writer cannot forge without the store's
        keys); a pack that does not hash to its name or whose header does not open is left
        alone (and not indexed)."""
        store, idx = self._store, self._store.index
        listed = {layout.pack_id_from_key(k) for k in self._section.list_objects(layout.PACKS)}
        listed.discard(None)

        def header(pid: bytes):
            what = f"pack {pid.hex()}"
            try:
                data = store.fetch_pack(pid)
                if pack.pack_id_of(data) != pid:
                    raise CorruptionError(reason=f"{what}: content does not hash to its name")
                return pid, pack.parse(store.sealer, data, what)
            except exception.BankObjectNotFound:
                return pid, None  # deleted meanwhile
            except CorruptionError as e:
                LOG.error("chunk store: not indexing %s", e.reason)
                return pid, None

        found = [(pid, entries) for pid, entries
                 in store.io_pool.map(header, sorted(listed - set(idx.packs)))
                 if entries is not None]
        if not found:
            return 0
        file_id, data = index.encode(store.sealer, found)
        store.put(layout.index_key(file_id), data)
        store.bank_flush()
        idx.add_file(file_id, found)
        LOG.warning("chunk store: index file %s rebuilt from %d pack headers",
                    file_id, len(found))
        return len(found)

    # ------------------------------------------------------------------ condemn

    def _condemn(self, report: GCReport) -> None:
        store, idx = self._store, self._store.index
        self._fresh(report)
        already = set().union(*(r.packs for r in load_records(self._section)))
        listed = {layout.pack_id_from_key(k) for k in self._section.list_objects(layout.PACKS)}
        listed.discard(None)
        live_bytes: dict[bytes, int] = defaultdict(int)
        for cid in self._referenced:
            loc = idx.lookup(cid, already)
            if loc is not None:
                live_bytes[loc.pack_id] += loc.length
        condemn, repack = [], []
        for pid, entries in list(idx.packs.items()):
            if pid in already:
                continue
            live = live_bytes.get(pid, 0)
            total = sum(e.length for e in entries) or 1
            if live == 0:
                condemn.append(pid)
            elif 1 - live / total >= self._repack_threshold:
                repack.append(pid)
        condemn.extend(sorted(listed - set(idx.packs) - already))
        if repack:
            moved = self._repack(repack, frozenset(already))
            report.repacked_packs += len(moved)
            condemn.extend(moved)
        self._consolidate(report)
        if not condemn:
            return
        record = Record(uuid.uuid4().hex, set(condemn), time.time())
        key = layout.condemned_key(record.record_id)
        bankio.put(self._section, key, record.to_json())
        # Only now: a writer that started after the write above will see the record.
        record.writers = live_writers(self._section, store.tuning.lease_grace)
        bankio.put(self._section, key, record.to_json())
        report.condemned_packs += len(condemn)
        store.call_hook("gc_condemned", record=record)

    def _repack(self, pids: list[bytes], already: frozenset) -> list[bytes]:
        """Copy the live chunks of mostly dead packs into new packs; the packs emptied."""
        store, idx = self._store, self._store.index
        moved = []
        with store.session() as session:
            for pid in pids:
                try:
                    data = store.fetch_pack(pid)
                    blobs = []
                    for e in idx.packs.get(pid, ()):
                        loc = idx.lookup(e.chunk_id, already)
                        if e.chunk_id in self._referenced and loc is not None \
                                and loc.pack_id == pid:
                            stored = memoryview(data)[e.offset:e.offset + e.length]
                            blob.decode_chunk(store.sealer, e.chunk_id, e.raw_length, stored)
                            blobs.append((e.chunk_id, stored, e.raw_length))
                except (exception.BankObjectNotFound, CorruptionError) as e:
                    LOG.error("chunk store: not repacking pack %s: %s", pid.hex(), e)
                    continue
                for cid, stored, raw_length in blobs:
                    session.add_blob(cid, stored, raw_length)
                moved.append(pid)
        return moved

    def _consolidate(self, report: GCReport) -> None:
        """Merge many small index files into one (new file first, then the old removed)."""
        idx = self._store.index
        if len(idx.files) <= self._consolidate_over:
            return
        old = sorted(idx.files)
        packs = sorted(idx.packs.items())
        file_id, data = index.encode(self._store.sealer, packs)
        self._store.put(layout.index_key(file_id), data)
        idx.add_file(file_id, packs)
        report.index_files_written += 1
        for f in old:
            if f != file_id:
                self._section.delete_object(layout.index_key(f))
                idx.remove_file(f)
                report.index_files_deleted += 1

    # ------------------------------------------------------------------ sweep

    def _sweep(self, report: GCReport) -> None:
        store = self._store
        grace = store.tuning.lease_grace
        report.waiting_for, report.pending_packs = [], 0
        records = load_records(self._section)
        if not records:
            return
        ripe, waiting = [], []
        for r in records:
            if r.writers is None:  # the collector stopped between its two writes
                r.writers = live_writers(self._section, grace)
                bankio.put(self._section, layout.condemned_key(r.record_id), r.to_json())
            blocking = [w for w in r.writers if writer_alive(self._section, w, grace)]
            (waiting if blocking else ripe).append(r)
            report.waiting_for.extend(blocking)
        report.pending_packs = sum(len(r.packs) for r in waiting)
        store.call_hook("gc_before_sweep", ripe=ripe, waiting=waiting)
        if not ripe:
            return
        self._fresh(report)  # after the leases were seen gone: their manifests are visible
        idx = store.index
        condemned = set().union(*(r.packs for r in records))
        still_waiting = set().union(*(r.packs for r in waiting)) if waiting else set()

        def has_live_copy(cid: bytes) -> bool:
            return any(loc.pack_id not in condemned for loc in idx.locations(cid))

        doomed = set()
        for r in ripe:
            for pid in r.packs - still_waiting:
                entries = idx.packs.get(pid)
                if entries is None or all(e.chunk_id not in self._referenced
                                          or has_live_copy(e.chunk_id) for e in entries):
                    doomed.add(pid)
                else:
                    report.kept_packs += 1
        self._drop_packs(doomed, report)
        for r in ripe:
            self._section.delete_object(layout.condemned_key(r.record_id))

    def _drop_packs(self, doomed: set[bytes], report: GCReport) -> None:
        store, idx = self._store, self._store.index
        affected = set()
        for pid in doomed:
            affected |= idx.files_of(pid)
        keep, seen = [], set()
        for f in sorted(affected):
            for pid in idx.files[f]:
                if pid not in doomed and pid not in seen:
                    seen.add(pid)
                    keep.append((pid, idx.packs[pid]))
        new_id = None
        if keep:
            keep.sort()
            new_id, data = index.encode(store.sealer, keep)
            store.put(layout.index_key(new_id), data)
            idx.add_file(new_id, keep)
            report.index_files_written += 1
        freed = {pid: sum(e.length for e in idx.packs.get(pid, ())) for pid in doomed}
        for f in sorted(affected):
            if f != new_id:
                self._section.delete_object(layout.index_key(f))
                idx.remove_file(f)
                report.index_files_deleted += 1
        store.bank_flush()
        for pid in sorted(doomed):
            self._section.delete_object(layout.pack_key(pid))
            report.deleted_packs += 1
            report.deleted_bytes += freed[pid]
