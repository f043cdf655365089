"""Write sessions: chunk, hash, dedup, compress, seal, pack and upload, in bounded memory.

Pipeline: the caller's thread reads the source in blocks and cuts them (pyfastcdc releases
the GIL while cutting) and hands each chunk, a view of its block (no copy), to the CPU
pool, which hashes it and, when the store lacks it, compresses and seals it (BLAKE3, zstd
and AES-GCM release the GIL: both cores work). Results
are taken back in source order; new blobs fill a pack, and full packs go to the I/O pool to
be stored. At most ``queue_depth`` chunks and ``pending_uploads`` packs are in flight.
A ``StreamBuilder`` keeps that pipeline full across many sources of one manifest (the
files of a directory) and appends the chunks of unchanged sources without reading them.

Protocol (what garbage collection relies on, see gc.py): the lease is written before the
index and the condemned records are read; packs are stored before the index file that lists
them, and that before any manifest that uses them; chunks found only in condemned packs
count as absent; nothing is indexed or committed once the lease may have expired.
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent import futures

from karbor.services.protection.chunkstore import blob, index, layout, pack
from karbor.services.protection.chunkstore.errors import ChunkStoreError, CorruptionError
from karbor.services.protection.chunkstore.gc import condemned_packs
from karbor.services.protection.chunkstore.lease import WriterLease
from karbor.services.protection.chunkstore.manifest import Manifest, WriteStats

LOG = logging.getLogger(__name__)


class WriteSession:
    """One writer: any number of streams, then ``commit()`` writes their manifests.

    Use as a context manager: a clean exit commits, an exception aborts (the manifests
    staged are dropped; the packs already stored are indexed so a retry reuses them).
    """

    def __init__(self, store):
        self._store = store
        self._sealer = store.sealer
        self._level = store.compression_level
        self._lease = WriterLease(store.section, store.tuning.lease_seconds).start()
        try:
            self._excluded = frozenset(condemned_packs(store.section))
            store.refresh_index()
        except BaseException:
            self._lease.release()
            raise
        self._known: set[bytes] = set()
        self._builder = pack.PackBuilder()
        self._uploads: deque[futures.Future] = deque()
        self._stored: list[index.PackEntries] = []
        self._staged: list[Manifest] = []
        self.stats = WriteStats()
        self._closed = False

    @property
    def writer_id(self) -> str:
        return self._lease.writer_id

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> WriteSession:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.commit()
            finally:
                self.close()
        else:
            self.abort()

    # ------------------------------------------------------------------ dedup

    def has(self, chunk_id: bytes) -> bool:
        """Whether the chunk is stored in this session or in a live (not condemned) pack."""
        return (chunk_id in self._known
                or self._store.index.lookup(chunk_id, self._excluded) is not None)

    # ------------------------------------------------------------------ writing

    def write_stream(self, fileobj, name: str, metadata: dict | None = None) -> Manifest:
        """Store a stream; its manifest is written by ``commit()``. Returns the manifest."""
        builder = self.stream(name, metadata)
        builder.write(fileobj)
        return builder.close()

    def stream(self, name: str, metadata: dict | None = None) -> StreamBuilder:
        """A manifest assembled from several sources (``write``, ``reuse``), pipelined
        across them: ``close()`` stages it. See StreamBuilder."""
        self._check_open()
        return StreamBuilder(self, layout.check_name(name), dict(metadata or {}))

    def add_chunks(self, items) -> WriteStats:
        """Store ``(chunk_id, data)`` pairs (copying from a store with the same id key)."""
        stats = WriteStats()
        self._ingest(((data, cid) for cid, data in items), [], stats)
        return stats

    def add_blob(self, chunk_id: bytes, stored, raw_length: int) -> bool:
        """Put an already sealed blob into a new pack (repacking); False if already here."""
        self._check_open()
        if chunk_id in self._known:
            return False
        self._add(chunk_id, bytes(stored), raw_length)
        return True

    def add_manifest(self, manifest: Manifest) -> Manifest:
        """Stage a manifest; every chunk it lists must be in the store or this session."""
        self._check_open()
        layout.check_name(manifest.name)
        missing = sum(1 for cid in manifest.chunk_ids() if not self.has(cid))
        if missing:
            raise ChunkStoreError(reason=f"manifest {manifest.name} lists {missing} chunks "
                                         "the store does not have")
        self._staged.append(manifest)
        if manifest.stats is not None:
            self.stats.add(manifest.stats)
        return manifest

    def _digest(self, data, expected: bytes | None):
        """CPU pool: the chunk id, and the sealed blob unless the store has the chunk."""
        cid = self._sealer.chunk_id(data)
        if expected is not None and cid != expected:
            raise CorruptionError(reason=f"chunk {expected.hex()} read back as {cid.hex()}")
        if self.has(cid):
            return cid, len(data), None
        return cid, len(data), blob.encode_chunk(self._sealer, cid, data, self._level)

    def _ingest(self, items, chunks: list, stats: WriteStats) -> None:
        self._check_open()
        pool = self._store.cpu_pool
        depth = self._store.tuning.queue_depth
        inflight: deque[futures.Future] = deque()
        try:
            for data, expected in items:
                inflight.append(pool.submit(self._digest, data, expected))
                del data
                if len(inflight) >= depth:
                    self._accept(chunks, stats, *inflight.popleft().result())
            while inflight:
                self._accept(chunks, stats, *inflight.popleft().result())
        except BaseException:
            for f in inflight:
                f.cancel()
            futures.wait(inflight)
            raise

    def _accept(self, chunks: list, stats: WriteStats, cid: bytes, n: int, sealed) -> None:
        chunks.append((cid, n))
        stats.bytes_in += n
        stats.chunks += 1
        if sealed is None or self.has(cid):
            return
        stats.new_chunks += 1
        stats.new_bytes += n
        stats.stored_bytes += len(sealed)
        self._add(cid, sealed, n)

    def _add(self, cid: bytes, sealed: bytes, n: int) -> None:
        self._builder.add(cid, sealed, n)
        self._known.add(cid)
        if self._builder.size >= self._store.pack_size:
            self._flush_pack()

    # ------------------------------------------------------------------ packs and index

    def _flush_pack(self) -> None:
        if not len(self._builder):
            return
        blobs, entries = self._builder.take()
        self._uploads.append(self._store.io_pool.submit(self._upload, blobs, entries))
        while len(self._uploads) > self._store.tuning.pending_uploads:
            self._reap_one()

    def _upload(self, blobs, entries) -> index.PackEntries:
        pack_id, data, out = pack.build(self._sealer, blobs, entries)
        blobs.clear()  # the pool's work item keeps the list itself alive until we return
        self._store.put(layout.pack_key(pack_id), data)
        self._store.call_hook("pack_stored", session=self, pack_id=pack_id)
        return pack_id, out

    def _reap_one(self) -> None:
        self._stored.append(self._uploads.popleft().result())
        if len(self._stored) >= self._store.tuning.index_every:
            self._write_index()

    def _write_index(self) -> None:
        if not self._stored:
            return
        self._lease.check()
        file_id, data = index.encode(self._sealer, self._stored)
        self._store.put(layout.index_key(file_id), data)
        self._store.index.add_file(file_id, self._stored)
        self._stored = []

    def _drain(self) -> None:
        self._flush_pack()
        while self._uploads:
            self._reap_one()

    # ------------------------------------------------------------------ commit / abort

    def commit(self) -> list[Manifest]:
        """Make every staged manifest durable, after the chunks it needs."""
        self._check_open()
        self._drain()
        self._write_index()
        self._store.bank_flush()
        self._store.call_hook("before_commit", session=self)
        staged, self._staged = self._staged, []
        if staged:
            self._lease.check()
            for m in staged:
                self._store.put(layout.manifest_key(m.name), m.encode(self._sealer))
            self._store.bank_flush()
        return staged

    def abort(self) -> None:
        """Drop staged manifests; index the packs already stored (best effort); release."""
        if self._closed:
            return
        self._staged = []
        self._builder.take()
        for f in self._uploads:
            try:
                self._stored.append(f.result())
            except Exception:  # noqa: BLE001 - the pack is lost; its chunks were not committed
                LOG.warning("chunk store: a pack upload failed during abort", exc_info=True)
        self._uploads.clear()
        try:
            self._write_index()
        except Exception:  # noqa: BLE001 - unindexed packs are collected as orphans
            LOG.warning("chunk store: could not index stored packs on abort", exc_info=True)
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        if self._staged or len(self._builder) or self._uploads:
            self._closed = True
            self._lease.release()
            raise ChunkStoreError(reason="write session closed with uncommitted data")
        self._closed = True
        self._lease.release()

    def _check_open(self) -> None:
        if self._closed:
            raise ChunkStoreError(reason="write session is closed")


class StreamBuilder:
    """One manifest from many sources, e.g. the files of a directory tree.

    ``write(fileobj)`` appends a source's chunks (cut on their own: a chunk never spans two
    sources, so each source's chunks can be reused alone later) and returns where the
    source starts in the stream; ``reuse(chunks)`` appends chunks the store already has
    without reading anything (False, appending nothing, if one of them is missing).
    Chunks of successive sources are hashed and compressed without waiting at source
    boundaries; ``close()`` waits for the last ones and stages the manifest.
    """

    def __init__(self, session: WriteSession, name: str, metadata: dict):
        self._session = session
        self.name = name
        self.metadata = metadata
        self.chunks: list = []          # (chunk_id, length); None while being hashed
        self.size = 0
        self.stats = WriteStats()
        self._inflight: deque[tuple[int, futures.Future]] = deque()
        self._depth = session._store.tuning.queue_depth
        self._closed = False

    def write(self, fileobj, size_hint: int | None = None) -> int:
        """Append everything ``fileobj`` yields; returns its offset in the stream."""
        s = self._session
        s._check_open()
        start = self.size
        pool = s._store.cpu_pool
        try:
            for view in s._store.chunker.chunks(fileobj, size_hint):
                self._submit(pool.submit(s._digest, view, None), len(view))
                del view
        except BaseException:
            self._cancel()
            raise
        return start

    def reuse(self, chunks) -> bool:
        """Append chunks the store holds (live, not condemned) without reading them."""
        s = self._session
        if not all(s.has(cid) for cid, _ in chunks):
            return False
        for cid, n in chunks:
            self.chunks.append((cid, n))
            self.size += n
            self.stats.bytes_in += n
            self.stats.chunks += 1
        return True

    def _submit(self, fut: futures.Future, n: int) -> None:
        self._inflight.append((len(self.chunks), fut))
        self.chunks.append(None)
        self.size += n
        while len(self._inflight) >= self._depth:
            self._take()

    def _take(self) -> None:
        slot, fut = self._inflight.popleft()
        cid, n, sealed = fut.result()
        self.chunks[slot] = (cid, n)
        stats = self.stats
        stats.bytes_in += n
        stats.chunks += 1
        s = self._session
        if sealed is None or s.has(cid):
            return
        stats.new_chunks += 1
        stats.new_bytes += n
        stats.stored_bytes += len(sealed)
        s._add(cid, sealed, n)

    def _cancel(self) -> None:
        for _, f in self._inflight:
            f.cancel()
        futures.wait([f for _, f in self._inflight])
        self._inflight.clear()
        self._closed = True

    def close(self) -> Manifest:
        """Wait for the chunks in flight and stage the manifest (see WriteSession)."""
        if self._closed:
            raise ChunkStoreError(reason=f"stream {self.name} is closed")
        try:
            while self._inflight:
                self._take()
        except BaseException:
            self._cancel()
            raise
        self._closed = True
        return self._session.add_manifest(Manifest(self.name, self.chunks, self.metadata,
                                                   stats=self.stats))
