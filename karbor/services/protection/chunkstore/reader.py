"""Reading chunks back: packs fetched ahead on the I/O pool, chunks opened on the CPU pool,
results handed out in order; every chunk is authenticated and re-hashed before use.

Memory: at most ``read_packs`` packs (the bank has no ranged read, so a pack is fetched
whole) and ``queue_depth`` decoded chunks at a time. A pack is dropped as soon as no chunk in
the window still needs it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent import futures

from karbor.common import exception
from karbor.services.protection.chunkstore import blob, layout
from karbor.services.protection.chunkstore.errors import CorruptionError
from karbor.services.protection.chunkstore.index import Location

GROUP_CHUNKS = 16        # chunks opened by one pool task, at most
GROUP_BYTES = 4 << 20    # and their plaintext bytes


class _Window:
    """The chunks between the next one to hand out and the last one planned, and their
    packs (fetched once, dropped when the window no longer covers them)."""

    def __init__(self, store, max_packs: int):
        self._store = store
        self._max_packs = max(1, max_packs)
        self._packs: dict[bytes, futures.Future] = {}
        self._uses: dict[bytes, int] = {}

    def can_take(self, loc: Location | None) -> bool:
        return loc is None or loc.pack_id in self._uses or len(self._uses) < self._max_packs

    def take(self, loc: Location | None) -> None:
        if loc is None:
            return
        pid = loc.pack_id
        if pid not in self._uses:
            self._uses[pid] = 0
            self._packs[pid] = self._store.io_pool.submit(self._store.fetch_pack, pid)
        self._uses[pid] += 1

    def release(self, loc: Location | None) -> None:
        if loc is None:
            return
        pid = loc.pack_id
        self._uses[pid] -= 1
        if not self._uses[pid]:
            del self._uses[pid]
            self._packs.pop(pid, None)

    def pack(self, loc: Location) -> futures.Future:
        return self._packs[loc.pack_id]

    def close(self) -> None:
        for f in self._packs.values():
            f.cancel()
        self._packs.clear()
        self._uses.clear()


class ChunkReader:
    """``views``: chunks stored uncompressed are handed out as views of their pack (no
    copy; the pack stays in memory while the caller holds one)."""

    def __init__(self, store, views: bool = False):
        self._store = store
        self._views = views

    def _decode(self, cid: bytes, n: int, loc: Location, pack_future):
        data = pack_future.result()
        if loc.raw_length != n:
            raise CorruptionError(reason=f"chunk {cid.hex()}: the index says "
                                         f"{loc.raw_length} bytes, the manifest {n}")
        if loc.offset + loc.length > len(data):
            raise CorruptionError(reason=f"chunk {cid.hex()}: beyond the end of pack "
                                         f"{loc.pack_id.hex()}")
        stored = memoryview(data)[loc.offset:loc.offset + loc.length]
        try:
            return blob.decode_chunk(self._store.sealer, cid, n, stored, self._views)
        except CorruptionError as e:
            raise CorruptionError(reason=f"{e.reason} (pack {loc.pack_id.hex()})") from None

    def _locate(self, cid: bytes, refreshed: list[bool]) -> Location | None:
        loc = self._store.index.lookup(cid)
        if loc is None and not refreshed[0]:
            refreshed[0] = True
            self._store.refresh_index()
            loc = self._store.index.lookup(cid)
        return loc

    def _retry(self, cid: bytes, n: int) -> bytes:
        """After a pack went missing: reload the index and try every location of the chunk."""
        self._store.refresh_index()
        problems = []
        for loc in self._store.index.locations(cid):
            f: futures.Future = futures.Future()
            try:
                f.set_result(self._store.fetch_pack(loc.pack_id))
                return self._decode(cid, n, loc, f)
            except exception.BankObjectNotFound:
                problems.append(f"pack {loc.pack_id.hex()} is missing")
            except CorruptionError as e:
                problems.append(e.reason)
        raise CorruptionError(reason=f"chunk {cid.hex()}: " +
                              ("; ".join(problems) or "in no index"))

    def _decode_many(self, items) -> list:
        """CPU pool: a group of chunks; a chunk that fails is its exception in the list."""
        out = []
        for cid, n, loc, pack_future in items:
            try:
                out.append(self._decode(cid, n, loc, pack_future))
            except (CorruptionError, exception.BankObjectNotFound) as e:
                out.append(e)
        return out

    def chunks(self, plan: list[tuple[bytes, int]],
               on_error: Callable[[int, bytes, CorruptionError], None] | None = None
               ) -> Iterator[tuple[int, bytes | None]]:
        """``(position, plaintext)`` for each ``(chunk_id, length)`` of ``plan``, in order.

        Without ``on_error`` the first bad chunk raises ``CorruptionError``; with it, the
        error is reported and ``(position, None)`` is yielded instead. Consecutive chunks
        are opened in groups (one pool task for many small ones); a chunk that comes again
        within the window (a run of zeros, a repeated block) is opened once.
        """
        store = self._store
        depth = store.tuning.queue_depth
        ahead_limit = depth * GROUP_BYTES      # plaintext bytes opened ahead of the caller
        window = _Window(store, store.tuning.read_packs)
        refreshed = [False]
        locs: deque[Location | None] = deque()
        # per submitted position: (holder of its group's future, index in the group)
        inflight: deque[tuple[list, int]] = deque()
        recent: dict[bytes, tuple[list, int]] = {}   # chunks submitted within the window
        planned = submitted = done = ahead = 0
        try:
            while done < len(plan):
                while planned < len(plan) and planned - done < GROUP_CHUNKS * depth:
                    loc = self._locate(plan[planned][0], refreshed)
                    if not window.can_take(loc):
                        break
                    window.take(loc)
                    locs.append(loc)
                    planned += 1
                while submitted < planned and (ahead < ahead_limit or submitted == done):
                    holder: list = [None]
                    items: list = []
                    size = 0
                    while (submitted < planned and len(items) < GROUP_CHUNKS
                           and size < GROUP_BYTES):
                        cid, n = plan[submitted]
                        loc = locs[submitted - done]
                        slot = recent.get(cid)
                        if slot is None and loc is not None:
                            slot = recent[cid] = (holder, len(items))
                            items.append((cid, n, loc, window.pack(loc)))
                            size += n
                        inflight.append(slot or (holder, -1))
                        ahead += n
                        submitted += 1
                    if items:
                        holder[0] = store.cpu_pool.submit(self._decode_many, items)
                    while len(recent) > GROUP_CHUNKS * depth:
                        del recent[next(iter(recent))]
                holder, i = inflight.popleft()
                cid, n = plan[done]
                ahead -= n
                try:
                    if i < 0:
                        raise CorruptionError(reason=f"chunk {cid.hex()} is in no index "
                                                     "(missing from the store)")
                    data = holder[0].result()[i]
                    if isinstance(data, exception.BankObjectNotFound):
                        data = self._retry(cid, n)
                    elif isinstance(data, CorruptionError):
                        raise data
                except CorruptionError as e:
                    if on_error is None:
                        raise
                    on_error(done, cid, e)
                    data = None
                window.release(locs.popleft())
                yield done, data
                done += 1
        finally:
            for holder, _ in inflight:
                if holder[0] is not None:
                    holder[0].cancel()
            window.close()


def fetch(store, pack_id: bytes):
    """A pack's bytes (a read-only buffer: the file-system bank maps the file)."""
    try:
        return store.section.get_buffer(layout.pack_key(pack_id))
    except exception.BankObjectNotFound:
        raise
    except exception.BankError:
        raise CorruptionError(reason=f"pack {pack_id.hex()} is not a bytes object") from None
