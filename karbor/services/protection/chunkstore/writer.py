"""Write sessions: chunk, hash, dedup, compress, seal, pack and upload, in bounded memory.

Pipeline: the caller's thread reads a source in blocks and cuts them (pyfastcdc releases
the GIL while cutting) and hands groups of chunks, views of their block (no copy), to the
CPU pool, which hashes them and, for chunks the store lacks, compresses and seals them
(BLAKE3, zstd and AES-GCM release the GIL: both cores work). Small sources go to the pool
whole, many in one task, and are read and cut there. Results are taken back in source
order; new blobs fill a pack, and full packs go to the I/O pool to be stored. At most
``queue_depth`` tasks and ``pending_uploads`` packs are in flight. A ``StreamBuilder``
keeps that pipeline full across many sources of one manifest (the files of a directory)
and appends the chunks of unchanged sources without reading them.

Protocol (what garbage collection relies on, see gc.py): the lease is written before the
index and the condemned records are read; packs are stored before the index file that lists
them, and that before any manifest that uses them; chunks found only in condemned packs
count as absent; nothing is indexed or committed once the lease may have expired.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent import futures
from typing import Any

from karbor.common import exception
from karbor.services.protection.chunkstore import blob, index, layout, pack
from karbor.services.protection.chunkstore.chunker import BufferPool
from karbor.services.protection.chunkstore.errors import ChunkStoreError, CorruptionError
from karbor.services.protection.chunkstore.gc import condemned_packs
from karbor.services.protection.chunkstore.lease import WriterLease
from karbor.services.protection.chunkstore.manifest import Manifest, WriteStats

LOG = logging.getLogger(__name__)

BATCH_BYTES = 1 << 20     # small sources read and digested together by one worker
BATCH_SOURCES = 128

Done = Callable[[int, int, Any], None]
"""``done(offset, length, info)``: where a source landed in the stream."""
_BEGIN = ("begin",)


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
        self.buffers = BufferPool()
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
        if exc_type is not None:
            self.abort()
            return
        try:
            self.commit()
        except BaseException:
            # What failed the commit (a full bank, say) is the error to report: closing
            # with the packs still in flight would replace it with "uncommitted data".
            self.abort()
            raise
        self.close()

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
        self._add(chunk_id, [bytes(stored)], raw_length)
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

    def _digest_many(self, views) -> list:
        """CPU pool: the pieces of a group of chunks (see StreamBuilder)."""
        out = [("chunk", *self._digest(v, None)) for v in views]
        views.clear()  # the pool's work item keeps the list alive until we return
        return out

    def _read_many(self, batch) -> list:
        """CPU pool: read small sources whole, cut and digest them."""
        out = []
        cut = self._store.chunker.cut
        for read, done in batch:
            data, info = read()
            out.append(_BEGIN)
            out.extend(("chunk", *self._digest(v, None)) for v in cut(data))
            out.append(("end", done, info))
        return out

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
        stats.stored_bytes += blob.parts_size(sealed)
        self._add(cid, sealed, n)

    def _add(self, cid: bytes, sealed: list, n: int) -> None:
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
            except Exception as exc:  # noqa: BLE001 - the pack is lost; its chunks were not committed
                LOG.warning("chunk store: a pack upload failed during abort: %s", exc,
                            exc_info=not isinstance(exc, exception.BankError))
        self._uploads.clear()
        try:
            self._write_index()
        except Exception as exc:  # noqa: BLE001 - unindexed packs are collected as orphans
            LOG.warning("chunk store: could not index stored packs on abort: %s", exc,
                        exc_info=not isinstance(exc, exception.BankError))
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        if self._staged or len(self._builder) or self._uploads:
            self._closed = True
            self._lease.release()
            raise ChunkStoreError(reason="write session closed with uncommitted data")
        self._closed = True
        self.buffers.clear()
        self._lease.release()

    def _check_open(self) -> None:
        if self._closed:
            raise ChunkStoreError(reason="write session is closed")


class StreamBuilder:
    """One manifest from many sources, e.g. the files of a directory tree.

    Sources are appended in call order; a chunk never spans two sources, so each source's
    chunks can be reused alone later. ``write(fileobj)`` reads and cuts a source on the
    caller's thread and hashes/compresses its chunks on the CPU pool; ``write_small(read)``
    hands a small source whole to the CPU pool, batched with its neighbours, so that many
    small files cost a few pool round trips instead of one each (``read`` runs on a worker
    and returns the bytes and an ``info`` of the caller's choice); ``reuse(chunks)`` appends
    chunks the store already has without reading anything. Each takes a ``done`` callback,
    called on the caller's thread in stream order once the source's chunks are known
    (during a later call or ``close()``): that is when its offset and length are known.
    Nothing waits at source boundaries; ``close()`` waits for the last ones and stages the
    manifest.
    """

    def __init__(self, session: WriteSession, name: str, metadata: dict):
        self._session = session
        self.name = name
        self.metadata = metadata
        self.chunks: list = []          # (chunk_id, length), in stream order, as taken
        self.size = 0
        self.stats = WriteStats()
        # in stream order: a future of a list of pieces, or such a list already known
        self._queue: deque = deque()
        self._futures = 0
        self._depth = session._store.tuning.queue_depth
        self._batch: list = []
        self._batch_bytes = 0
        self._start = 0
        self._closed = False

    # ------------------------------------------------------------------ sources

    def write(self, fileobj, size_hint: int | None = None, done: Done | None = None,
              info: Any = None) -> None:
        """Append everything ``fileobj`` yields (cut here, digested on the CPU pool)."""
        s = self._check()
        self._flush_batch()
        self._queue.append([_BEGIN])
        pool, group, group_bytes = s._store.cpu_pool, [], 0
        limit = s._store.params.max_size  # a group: about one largest chunk's worth
        try:
            for view in s._store.chunker.chunks(fileobj, size_hint, buffers=s.buffers):
                group.append(view)
                group_bytes += len(view)
                del view
                if group_bytes >= limit:
                    self._submit(pool.submit(s._digest_many, group))
                    group, group_bytes = [], 0
            if group:
                self._submit(pool.submit(s._digest_many, group))
        except BaseException:
            self._cancel()
            raise
        self._queue.append([("end", done, info)])
        self._take_ready()

    def write_small(self, read: Callable[[], tuple[Any, Any]], size_hint: int,
                    done: Done | None = None) -> None:
        """Append a small source read whole on a CPU worker: ``read()`` returns
        ``(data, info)``; ``done(offset, length, info)`` follows in stream order."""
        self._check()
        self._batch.append((read, done))
        self._batch_bytes += max(size_hint, 0)
        if self._batch_bytes >= BATCH_BYTES or len(self._batch) >= BATCH_SOURCES:
            self._flush_batch()

    def reuse(self, chunks, done: Done | None = None, info: Any = None) -> bool:
        """Append chunks the store holds (live, not condemned) without reading them;
        False, appending nothing, if one of them is missing."""
        s = self._check()
        if not all(s.has(cid) for cid, _ in chunks):
            return False
        self._flush_batch()
        self._queue.append([_BEGIN, *(("chunk", cid, n, None) for cid, n in chunks),
                            ("end", done, info)])
        self._take_ready()
        return True

    # ------------------------------------------------------------------ pipeline

    def _flush_batch(self) -> None:
        if self._batch:
            batch, self._batch, self._batch_bytes = self._batch, [], 0
            self._submit(self._session._store.cpu_pool.submit(self._session._read_many,
                                                              batch))

    def _submit(self, fut: futures.Future) -> None:
        self._queue.append(fut)
        self._futures += 1
        while self._futures >= self._depth:
            self._take()

    def _take_ready(self) -> None:
        """Apply what is known at the head of the queue (no waiting)."""
        while self._queue and (not isinstance(self._queue[0], futures.Future)
                               or self._queue[0].done()):
            self._take()

    def _take(self) -> None:
        """Apply the oldest queued pieces (waiting for them if they are being digested)."""
        item = self._queue.popleft()
        if isinstance(item, futures.Future):
            self._futures -= 1
            item = item.result()
        s = self._session
        stats = self.stats
        for piece in item:
            kind = piece[0]
            if kind == "chunk":
                _, cid, n, sealed = piece
                self.chunks.append((cid, n))
                self.size += n
                stats.bytes_in += n
                stats.chunks += 1
                if sealed is None or s.has(cid):
                    continue
                stats.new_chunks += 1
                stats.new_bytes += n
                stats.stored_bytes += blob.parts_size(sealed)
                s._add(cid, sealed, n)
            elif kind == "begin":
                self._start = self.size
            elif piece[1] is not None:   # end
                piece[1](self._start, self.size - self._start, piece[2])

    def _cancel(self) -> None:
        pending = [f for f in self._queue if isinstance(f, futures.Future)]
        for f in pending:
            f.cancel()
        futures.wait(pending)
        self._queue.clear()
        self._batch = []
        self._closed = True

    def _check(self) -> WriteSession:
        if self._closed:
            raise ChunkStoreError(reason=f"stream {self.name} is closed")
        self._session._check_open()
        return self._session

    def close(self) -> Manifest:
        """Wait for the chunks in flight and stage the manifest (see WriteSession)."""
        self._check()
        try:
            self._flush_batch()
            while self._queue:
                self._take()
        except BaseException:
            self._cancel()
            raise
        self._closed = True
        return self._session.add_manifest(Manifest(self.name, self.chunks, self.metadata,
                                                   stats=self.stats))
