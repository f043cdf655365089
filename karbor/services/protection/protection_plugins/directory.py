"""Protection plugin for Karbor::Local::Directory, on the bank's chunk store.

Protect walks the tree without following symlinks and streams every regular file into the
chunk store of the checkpoint's bank (the files one after the other in the stream
``dir/<checkpoint>/<resource>/d0``; files unchanged since the last checkpoint are not read
again, see "Files cache" below); the tree itself (types, modes, mtimes, owners, symlink
targets, hard links) is the ``tree`` object of the resource's bank section. Restore
rebuilds it under ``restore_path`` or in place (``in_place: true``), never following a
symlink out of the target and never leaving a file whose data failed its integrity check.
"""

from __future__ import annotations

import bisect
import logging
import os
import queue
import shutil
import stat
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from karbor.common import constants, exception
from karbor.services.protection import protection_plugin
from karbor.services.protection.chunkstore import reader
from karbor.services.protection.chunkstore.errors import ChunkStoreError, ManifestNotFound
from karbor.services.protection.chunkstore.manifest import Manifest
from karbor.services.protection.chunkstore.store import ChunkStore
from karbor.services.protection.protectable_plugins import directory as protectable
from karbor.services.protection.protection_plugins import _chunks, _params

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = protectable.RESOURCE_TYPE
TREE_VERSION = 2
TREE_VERSIONS = (1, 2)   # restored, verified, copied and deleted
TREE_KEY = "tree"        # manifest dir/<checkpoint>/<resource>/tree holds the tree
BLOCK = 4096          # zero runs of this size (aligned) become holes on restore
PART_CHUNKS = 100_000  # chunks per data stream of a tree (a new one starts after a file)
RESTORE_THREADS = 2    # threads creating small files on restore (more only contend on 2 cores)
SMALL_FILE = 1 << 20   # files up to this size are written by those threads
SMALL_SOURCE = 4 << 20  # files up to this size are read whole by the chunk store's workers
SMALL_FILES_HELD = 64 << 20  # bytes of small files waiting for them
BATCH_FILES = 32       # small files per job of those threads

def _stream_name(checkpoint_id: str, resource_id: str, key: str) -> str:
    return f"dir/{checkpoint_id}/{resource_id}/{key}"


def _source_path(resource) -> str:
    path = (resource.extra_info or {}).get("path") or resource.name
    real = protectable.check_path(path)
    if protectable.directory_id(path) != resource.id:
        raise exception.InvalidInput(reason=f"resource {resource.id} is not the directory "
                                            f"{path!r}")
    if not os.path.isdir(real) or os.path.islink(path):
        raise exception.InvalidInput(reason=f"{path!r} is not a directory")
    return real


# ---------------------------------------------------------------------------------- protect
#
# Tree version 2 (written now): the regular files' data is one chunk-store stream per
# PART_CHUNKS chunks (manifest ``dir/<checkpoint>/<resource>/d<k>``), the files one after
# the other in tree order, each cut on its own (no chunk spans two files); a file entry
# has ``stream`` (``d<k>``), ``offset`` and ``size``. Version 1 (still restored, verified,
# copied and deleted): one manifest per file, ``f<n>``, entries without ``offset``.
#
# Files cache: manifest ``dir-cache/<resource>`` (no chunks, so it keeps nothing alive)
# names the resource's latest checkpoint and lists its files' path, size, mtime, ctime and
# inode with where they are in its streams. A file whose four values are unchanged (and
# that had not been changed within a second of that backup's start) is not read again:
# its chunks are taken over from the previous stream if the store still holds them all.

def _walk(top: str, vanished: list):
    """(relative path, lstat) of everything below ``top``, parents first, never following
    a symlink; what is deleted while the walk goes on is added to ``vanished``."""
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(top, rel) if rel else top) as it:
                entries = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            if not rel:
                raise
            vanished.append(rel)
            continue
        for entry in entries:
            child = os.path.join(rel, entry.name) if rel else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                vanished.append(child)
                continue
            yield child, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(child)


def _entry(rel: str, st: os.stat_result, kind: str) -> dict:
    return {"path": rel, "type": kind, "mode": stat.S_IMODE(st.st_mode),
            "mtime_ns": st.st_mtime_ns, "uid": st.st_uid, "gid": st.st_gid}


def _cache_name(resource_id: str) -> str:
    return f"dir-cache/{resource_id}"


class _FilesCache:
    """The previous checkpoint's files (see above): ``lookup(rel, st)`` gives the chunks
    of an unchanged file, or None."""

    def __init__(self):
        self._files: dict[str, list] = {}
        self._streams: dict[str, tuple[list, list[int]]] = {}

    @classmethod
    def load(cls, store: ChunkStore, top: str, resource_id: str) -> _FilesCache:
        cache = cls()
        try:
            meta = store.get_manifest(_cache_name(resource_id)).metadata
            if meta.get("version") != 1 or meta.get("source") != top:
                return cache
            recent = int(meta["started_ns"]) - 1_000_000_000
            for key in meta["streams"]:
                m = store.get_manifest(_stream_name(meta["checkpoint"], resource_id, key))
                starts, pos = [], 0
                for _, n in m.chunks:
                    starts.append(pos)
                    pos += n
                starts.append(pos)
                cache._streams[key] = (m.chunks, starts)
            for rel, size, mtime_ns, ctime_ns, ino, key, offset in meta["files"]:
                if mtime_ns < recent and ctime_ns < recent and key in cache._streams:
                    cache._files[rel] = [size, mtime_ns, ctime_ns, ino, key, offset]
        except (ChunkStoreError, KeyError, TypeError, ValueError) as exc:
            LOG.info("no files cache for %s (%s): every file is read", top, exc)
            cache._files.clear()
        return cache

    def lookup(self, rel: str, st: os.stat_result):
        hit = self._files.get(rel)
        if hit is None or hit[:4] != [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]:
            return None
        chunks, starts = self._streams[hit[4]]
        offset, end = hit[5], hit[5] + hit[0]
        i = bisect.bisect_left(starts, offset)
        j = bisect.bisect_left(starts, end, i)
        if i >= len(starts) or starts[i] != offset or j >= len(starts) or starts[j] != end:
            return None  # not cut at the file's boundaries: read it
        return chunks[i:j]


def _same_file(fd: int, rel: str, ident: tuple[int, int]) -> os.stat_result:
    fst = os.fstat(fd)
    if (fst.st_dev, fst.st_ino) != ident:
        raise exception.KarborException(message=f"{rel} changed while it was being protected")
    return fst


def _reader(path: str, rel: str, ident: tuple[int, int]):
    """A small file's contents and fstat, read whole on a chunk-store worker."""
    def read():
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return b"", None   # deleted since the walk (see _file_done)
        try:
            fst = _same_file(fd, rel, ident)
            parts = [os.read(fd, fst.st_size + 1)]
            while parts[-1]:
                parts.append(os.read(fd, 1 << 20))
        finally:
            os.close(fd)
        return parts[0] if len(parts) == 2 else b"".join(parts), fst
    return read


def _file_done(e: dict, rel: str, key: str, files: list, vanished: list):
    """Fills a file's entry (and the next files cache) once its place in stream ``key``
    is known; a file deleted before it could be opened (no ``fst``) is ``vanished``."""
    def done(offset: int, size: int, fst: os.stat_result | None) -> None:
        if fst is None:
            vanished.append(rel)
            return
        if not size:
            e.update(size=0, sparse=False)
            return
        e.update(size=size, stream=key, offset=offset,
                 sparse=fst.st_blocks * 512 < fst.st_size)
        if size == fst.st_size:
            files.append([rel, fst.st_size, fst.st_mtime_ns, fst.st_ctime_ns, fst.st_ino,
                          key, offset])
    return done


def protect_tree(store: ChunkStore, top: str, checkpoint_id: str, resource_id: str) -> dict:
    started_ns = time.time_ns()
    root_st = os.lstat(top)
    entries = [_entry("", root_st, "dir")]
    links: dict[tuple[int, int], str] = {}
    skipped = []
    vanished: list[str] = []
    cache = _FilesCache.load(store, top, resource_id)
    files = []      # the next files cache
    streams = []
    with store.session() as session:
        data = None

        def stream():
            nonlocal data
            if data is None or len(data.chunks) >= PART_CHUNKS:
                if data is not None:
                    data.close()
                streams.append(f"d{len(streams)}")
                data = session.stream(_stream_name(checkpoint_id, resource_id,
                                                   streams[-1]))
            return data

        for rel, st in _walk(top, vanished):
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                entries.append(_entry(rel, st, "dir"))
            elif stat.S_ISLNK(mode):
                e = _entry(rel, st, "symlink")
                try:
                    e["target"] = os.readlink(os.path.join(top, rel))
                except FileNotFoundError:
                    vanished.append(rel)
                    continue
                entries.append(e)
            elif stat.S_ISREG(mode):
                ident = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and ident in links:
                    entries.append({"path": rel, "type": "hardlink", "target": links[ident]})
                    continue
                if st.st_nlink > 1:
                    links[ident] = rel
                e = _entry(rel, st, "file")
                entries.append(e)
                if not st.st_size:
                    e.update(size=0, sparse=False)
                    continue
                s = stream()
                done = _file_done(e, rel, streams[-1], files, vanished)
                chunks = cache.lookup(rel, st)
                if chunks is not None and s.reuse(chunks, done, st):
                    continue
                path = os.path.join(top, rel)
                if st.st_size <= SMALL_SOURCE:
                    s.write_small(_reader(path, rel, ident), st.st_size, done)
                    continue
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                except FileNotFoundError:
                    vanished.append(rel)
                    continue
                with os.fdopen(fd, "rb", buffering=0) as f:
                    fst = _same_file(fd, rel, ident)
                    s.write(f, fst.st_size, done, fst)
            else:
                skipped.append(rel)  # sockets, FIFOs, devices: not data
        if data is not None:
            data.close()
        session.add_manifest(Manifest(_cache_name(resource_id), [], {
            "version": 1, "checkpoint": checkpoint_id, "source": top,
            "started_ns": started_ns, "streams": streams, "files": files}))
    if skipped:
        LOG.info("%d special files not protected in %s", len(skipped), top)
    if vanished:
        # Deleted while the walk went on: they are not in the checkpoint (nor hard links
        # whose recorded name was one of them, nor anything below a vanished directory).
        gone = set(vanished)
        kept = []
        for e in entries:
            path = e["path"]
            if (path in gone or e.get("target") in gone and e["type"] == "hardlink"
                    or any(p in gone for p in _parents(path))):
                gone.add(path)
            else:
                kept.append(e)
        entries = kept
        vanished = sorted(gone)
        LOG.warning("%d entries of %s were deleted while it was being protected: %s",
                    len(vanished), top, ", ".join(vanished[:10]))
    return {"version": TREE_VERSION, "source": top, "entries": entries, "skipped": skipped,
            "vanished": vanished}


def _parents(path: str):
    while True:
        path = os.path.dirname(path)
        if not path:
            return
        yield path


def _streams(tree: dict) -> list[str]:
    """The stream keys of a tree, each once, in order."""
    return list(dict.fromkeys(e["stream"] for e in tree["entries"] if e.get("stream")))


# ---------------------------------------------------------------------------------- restore

class RestoreError(exception.KarborException):
    message = "Restore of the directory failed: %(reason)s"


def _inside(target_real: str, path: str) -> None:
    real = os.path.realpath(path)
    if real != target_real and os.path.commonpath([real, target_real]) != target_real:
        raise RestoreError(reason=f"{path!r} resolves outside the restore target")


def _clear(path: str, keep_dir: bool) -> None:
    """Remove what is at ``path`` (not following a symlink) unless it is a directory that
    should stay."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _plan(store: ChunkStore, tree: dict, checkpoint_id: str, resource_id: str):
    """The chunks of every file's data, in tree order, for one pass of the reader:
    ``(plan, cuts, counts)`` with ``cuts[i]`` the part of chunk ``i`` that belongs to its
    file and ``counts[e]`` the number of chunks of file entry ``e``."""
    plan, cuts, counts = [], [], []
    loaded: dict[str, tuple[list, list[int]]] = {}
    for e in tree["entries"]:
        if e["type"] != "file" or not e.get("stream"):
            continue
        name = _stream_name(checkpoint_id, resource_id, e["stream"])
        size = e["size"]
        try:
            if "offset" not in e:  # version 1: a manifest per file
                m = store.get_manifest(name)
                if m.size != size:
                    raise RestoreError(reason=f"stream {name} has {m.size} bytes, expected "
                                              f"{size}")
                plan.extend(m.chunks)
                cuts.extend((0, n) for _, n in m.chunks)
                counts.append(len(m.chunks))
                continue
            if e["stream"] not in loaded:
                m = store.get_manifest(name)
                starts, pos = [], 0
                for _, n in m.chunks:
                    starts.append(pos)
                    pos += n
                starts.append(pos)
                loaded[e["stream"]] = (m.chunks, starts)
        except ChunkStoreError as exc:
            raise RestoreError(reason=f"file {e['path']!r} not restored: {exc.msg}") from exc
        chunks, starts = loaded[e["stream"]]
        pos, end = e["offset"], e["offset"] + size
        if pos < 0 or end > starts[-1]:
            raise RestoreError(reason=f"file {e['path']!r}: beyond the end of stream {name}")
        i = bisect.bisect_right(starts, pos) - 1
        first = len(plan)
        while pos < end:
            cid, n = chunks[i]
            lo, hi = pos - starts[i], min(n, end - starts[i])
            plan.append((cid, n))
            cuts.append((lo, hi))
            pos = starts[i] + hi
            i += 1
        counts.append(len(plan) - first)
    return plan, cuts, counts


class _Pieces:
    """The files' bytes from one pass of the chunk reader (fetching ahead across files)."""

    def __init__(self, store: ChunkStore, plan, cuts):
        self._chunks = (reader.ChunkReader(store, views=True).chunks(plan) if plan
                        else iter(()))
        self._cuts = cuts
        self._i = 0

    def take(self, count: int):
        for _ in range(count):
            _, data = next(self._chunks)
            lo, hi = self._cuts[self._i]
            self._i += 1
            yield data if lo == 0 and hi == len(data) else memoryview(data)[lo:hi]

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


_ZEROS = bytes(4 << 20)  # ``_ZEROS.startswith(x)``: a memcmp telling whether x is all zero


def _zero(data) -> bool:
    return len(data) <= len(_ZEROS) and _ZEROS.startswith(data)


def _write_data(pieces, fd: int, size: int, sparse: bool) -> None:
    """Write a file's pieces; in a sparse file, all-zero blocks (aligned, BLOCK bytes) are
    not written, so they stay holes (the file is truncated to its size at the end)."""
    pos = 0
    zero_block = _ZEROS[:BLOCK]
    for piece in pieces:
        n = len(piece)
        if sparse and _zero(piece):
            pos += n
            continue
        if sparse and not isinstance(piece, bytes):
            piece = bytes(piece)  # ``in`` on a memoryview compares byte by byte
        if not sparse or zero_block not in piece:
            # (a piece with no run of BLOCK zero bytes holds no zero block either)
            os.pwrite(fd, piece, pos)
            pos += n
            continue
        mv = memoryview(piece)
        i = 0
        start = None  # where the run of data to write begins
        while i < n:
            j = min(n, i + BLOCK - (pos + i) % BLOCK)  # to the next block boundary
            if j - i == BLOCK and _ZEROS.startswith(mv[i:j]):
                if start is not None:
                    os.pwrite(fd, mv[start:i], pos + start)
                    start = None
            elif start is None:
                start = i
            i = j
        if start is not None:
            os.pwrite(fd, mv[start:n], pos + start)
        pos += n
    if pos != size:
        raise RestoreError(reason=f"{pos} bytes instead of {size}")
    if sparse:
        os.ftruncate(fd, size)


def _apply_meta(path: str, e: dict, as_root: bool, symlink: bool = False) -> None:
    if as_root:
        os.chown(path, e["uid"], e["gid"], follow_symlinks=False)
    if not symlink:
        os.chmod(path, e["mode"])
    if symlink and os.utime not in os.supports_follow_symlinks:
        return
    os.utime(path, ns=(e["mtime_ns"], e["mtime_ns"]), follow_symlinks=not symlink)


def _restore_file(path: str, tmp: str | None, e: dict, pieces, as_root: bool) -> None:
    """Write a file under a temporary name, then rename it over what is at ``path``; or,
    with no ``tmp`` (a restore into a new directory), create it at ``path`` directly. A
    file whose data fails is removed either way."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    if tmp is None:
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            _clear(path, keep_dir=False)
            fd = os.open(path, flags, 0o600)
        name = path
    else:
        _clear(path, keep_dir=False)
        fd = os.open(tmp, flags, 0o600)
        name = tmp
    try:
        if e.get("stream"):
            try:
                _write_data(pieces, fd, e["size"], bool(e.get("sparse")))
            except (ChunkStoreError, RestoreError) as exc:
                raise RestoreError(reason=f"file {e['path']!r} not restored: "
                                          f"{exc.msg}") from exc
        os.close(fd)
        fd = -1
        if tmp is not None:
            os.rename(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(name)
        raise
    _apply_meta(path, e, as_root)


_END = object()


class _Feed:
    """A big file's pieces, handed from the thread reading the chunk store (which must
    take every file's pieces in order) to the thread writing the file, so that reading
    and opening chunks goes on while the kernel copies data into the file."""

    def __init__(self, depth: int = 8):
        self._q: queue.Queue = queue.Queue(depth)

    def __iter__(self):
        while True:
            item = self._q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def put(self, item, writer) -> None:
        """Queue ``item``; if the writer stopped (its future is done), raise its error."""
        while True:
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                if writer.done():
                    writer.result()
                    raise RestoreError(reason="the file writer stopped early") from None


def _restore_files(batch, as_root: bool) -> None:
    for path, tmp, e, data in batch:
        _restore_file(path, tmp, e, data, as_root)


def restore_tree(store: ChunkStore, tree: dict, target: str, checkpoint_id: str,
                 resource_id: str, in_place: bool) -> None:
    as_root = os.geteuid() == 0
    os.makedirs(target, exist_ok=True)
    target_real = os.path.realpath(target)
    entries = tree["entries"]
    plan, cuts, counts = _plan(store, tree, checkpoint_id, resource_id)
    pieces = _Pieces(store, plan, cuts)
    dirs = []
    checked: set[str] = set()   # parent directories found inside the target
    n_file = n_tmp = 0
    tmp_prefix = f".karbor-restore-{os.getpid()}-{threading.get_ident()}-"
    # Small files are written by a few threads, many per job (creating files is most of
    # their cost); big ones by another thread, fed their pieces by this one.
    pool = ThreadPoolExecutor(RESTORE_THREADS, thread_name_prefix="restore")
    big = ThreadPoolExecutor(1, thread_name_prefix="restore-big")
    jobs: deque = deque()
    held = 0
    batch: list = []    # small files for one job of the pool
    batch_bytes = 0

    def flush() -> None:
        nonlocal batch, batch_bytes
        if batch:
            jobs.append((pool.submit(_restore_files, batch, as_root), batch_bytes))
            batch, batch_bytes = [], 0

    def settle(limit: int) -> None:
        nonlocal held
        if limit < 0:
            flush()
        while jobs and (len(jobs) > 16 or held > limit):
            fut, n = jobs.popleft()
            held -= n
            fut.result()

    try:
        for e in entries:
            rel = e["path"]
            path = os.path.join(target, rel) if rel else target
            if rel:
                if os.path.isabs(rel) or ".." in rel.split(os.sep):
                    raise RestoreError(reason=f"entry {rel!r} would leave the target")
                parent = os.path.dirname(path)
                if parent not in checked:
                    _inside(target_real, parent)
                    checked.add(parent)
            kind = e["type"]
            if kind == "dir":
                if rel:
                    if os.path.lexists(path) and not (in_place and os.path.isdir(path)
                                                      and not os.path.islink(path)):
                        settle(-1)  # no file is written below what changes here
                        checked.clear()
                    _clear(path, keep_dir=in_place)
                    if not os.path.isdir(path) or os.path.islink(path):
                        os.mkdir(path, 0o700)
                dirs.append((path, e))
            elif kind == "file":
                n_tmp += 1
                tmp = (os.path.join(os.path.dirname(path), tmp_prefix + str(n_tmp))
                       if in_place else None)
                data = ()
                if e.get("stream"):
                    data = pieces.take(counts[n_file])
                    n_file += 1
                    if e["size"] <= SMALL_FILE:
                        try:
                            data = [bytes(p) for p in data]
                        except ChunkStoreError as exc:
                            raise RestoreError(reason=f"file {rel!r} not restored: "
                                                      f"{exc.msg}") from exc
                if isinstance(data, list) or not e.get("stream"):
                    size = e.get("size", 0)
                    batch.append((path, tmp, e, data))
                    batch_bytes += size
                    held += size
                    if len(batch) >= BATCH_FILES or batch_bytes >= SMALL_FILE:
                        flush()
                    settle(SMALL_FILES_HELD)
                else:
                    feed = _Feed()
                    writer = big.submit(_restore_file, path, tmp, e, feed, as_root)
                    jobs.append((writer, 0))
                    try:
                        for piece in data:
                            feed.put(piece, writer)
                    except BaseException as exc:
                        # the writer removes the file (and must not wait for more)
                        feed.put(exc if isinstance(exc, Exception)
                                 else RestoreError(reason="restore interrupted"), writer)
                        if isinstance(exc, ChunkStoreError):
                            writer.result()  # its error names the file
                        raise
                    feed.put(_END, writer)
            elif kind == "symlink":
                settle(-1)  # (nor through a symlink made meanwhile)
                _clear(path, keep_dir=False)
                os.symlink(e["target"], path)
                checked.clear()
                _apply_meta(path, e, as_root, symlink=True)
            elif kind == "hardlink":
                settle(-1)  # its target is written
                _clear(path, keep_dir=False)
                source = os.path.join(target, e["target"])
                _inside(target_real, source)
                os.link(source, path, follow_symlinks=False)
        settle(-1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        big.shutdown(wait=True, cancel_futures=True)
        pieces.close()
    # Directories last, deepest first, so creating their children does not touch mtimes.
    for path, e in reversed(dirs):
        _apply_meta(path, e, as_root)


# ---------------------------------------------------------------------------------- hooks

class _Protect(protection_plugin.Operation):
    def __init__(self, config):
        self._config = config

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", "protecting")
        top = _source_path(resource)
        store = _chunks.store_for(self._config, checkpoint.bank)
        tree = protect_tree(store, top, checkpoint.id, resource.id)
        # The tree names every file: it is kept as the (sealed) metadata of a chunk-less
        # manifest, so an encrypted store shows no file name in the bank.
        with store.session() as s:
            s.add_manifest(Manifest(_stream_name(checkpoint.id, resource.id, TREE_KEY), [],
                                    tree))
        section.update_object("status", constants.CHECKPOINT_STATUS_AVAILABLE)


def _tree(checkpoint, resource, store: ChunkStore) -> dict:
    """The resource's tree: a manifest's metadata, or (checkpoints written before trees
    went into the chunk store) the plain ``tree`` object of its bank section."""
    try:
        tree = store.get_manifest(_stream_name(checkpoint.id, resource.id, TREE_KEY)).metadata
    except ManifestNotFound:
        try:
            tree = checkpoint.get_resource_bank_section(resource.id).get_object("tree")
        except exception.BankObjectNotFound:
            raise RestoreError(reason=f"no tree of {resource.id} in the bank") from None
    if not isinstance(tree, dict) or tree.get("version") not in TREE_VERSIONS:
        raise RestoreError(reason=f"the tree of {resource.id} has an unknown format")
    return tree


class _Restore(protection_plugin.Operation):
    def __init__(self, config):
        self._config = config

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        recorder = kwargs.get("restore")
        try:
            store = _chunks.store_for(self._config, checkpoint.bank)
            tree = _tree(checkpoint, resource, store)
            in_place = _params.flag(parameters, "in_place")
            path = parameters.get("restore_path")
            if in_place == bool(path):
                raise exception.InvalidInput(
                    reason="give either restore_path or in_place: true")
            if in_place:
                target = tree["source"]
                protectable.check_path(target)
            else:
                target = os.path.abspath(path)
                protectable.check_path(target)
                if os.path.lexists(target) and (os.path.islink(target)
                                                or not os.path.isdir(target)
                                                or os.listdir(target)):
                    raise exception.InvalidInput(
                        reason=f"restore_path {path!r} exists and is not an empty directory")
            created = not os.path.lexists(target)
            try:
                restore_tree(store, tree, target, checkpoint.id, resource.id, in_place)
            except BaseException:
                if created:  # a failed restore into a new path leaves nothing behind
                    shutil.rmtree(target, ignore_errors=True)
                raise
        except Exception as exc:
            if recorder is not None:
                recorder.update_resource_status(resource.type, resource.id, "error",
                                                _chunks.message(exc))
            raise
        new_id = protectable.directory_id(target)
        kwargs.get("new_resources", {})[resource.id] = new_id
        if recorder is not None:
            recorder.update_resource_status(resource.type, new_id, "available")


def verify_tree(store: ChunkStore, tree: dict, checkpoint_id: str,
                resource_id: str) -> list[str]:
    """Re-read every chunk of the tree's data; one problem per file with bad chunks."""
    problems = []
    by_stream: dict[str, list[tuple[int, int, str]]] = {}
    for e in tree["entries"]:
        if e.get("stream"):
            by_stream.setdefault(e["stream"], []).append(
                (e.get("offset", 0), e["size"], e["path"]))
    for key, files in by_stream.items():
        report = store.verify(_stream_name(checkpoint_id, resource_id, key))
        if report.ok:
            continue
        bad: dict[str, list[str]] = {}
        starts = [f[0] for f in files]
        for b in report.bad:
            hit = set()
            for off in b.get("offsets") or [0]:
                i = bisect.bisect_right(starts, off) - 1
                # a chunk may end in the files after the one it starts in
                while i < len(files) and files[i][0] < off + 1 + (4 << 20):
                    if i >= 0 and files[i][1] and files[i][0] + files[i][1] > off:
                        hit.add(files[i][2])
                        break
                    i += 1
            for path in sorted(hit) or [files[0][2]]:
                bad.setdefault(path, []).append(b["reason"])
        for path, reasons in bad.items():
            problems.append(f"corrupt data in {path!r} ({len(reasons)} bad chunk(s)): "
                            f"{reasons[0]}")
    return problems


class _Verify(protection_plugin.Operation):
    def __init__(self, config):
        self._config = config

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        recorder = kwargs.get("verify")
        problems = []
        try:
            store = _chunks.store_for(self._config, checkpoint.bank)
            tree = _tree(checkpoint, resource, store)
            problems.extend(verify_tree(store, tree, checkpoint.id, resource.id))
        except (ChunkStoreError, RestoreError) as exc:
            problems.append(_chunks.message(exc))
        if problems:
            reason = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)"
                                                if len(problems) > 3 else "")
            if recorder is not None:
                recorder.update_resource_status(resource.type, resource.id, "error", reason)
            raise RestoreError(reason=f"verification failed: {reason}")
        if recorder is not None:
            recorder.update_resource_status(resource.type, resource.id, "available")


class _Delete(protection_plugin.Operation):
    def __init__(self, config):
        self._config = config

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        store = _chunks.store_for(self._config, checkpoint.bank)
        for name in store.list_manifests(f"dir/{checkpoint.id}/{resource.id}/"):
            store.delete_manifest(name)
        try:
            cache = store.get_manifest(_cache_name(resource.id))
            if cache.metadata.get("checkpoint") == checkpoint.id:
                store.delete_manifest(cache.name)
        except (ManifestNotFound, ChunkStoreError):
            pass
        section = checkpoint.get_resource_bank_section(resource.id)
        section.delete_object("tree")
        section.update_object("status", constants.CHECKPOINT_STATUS_DELETED)
        _chunks.collect(store, LOG)


class _Copy(protection_plugin.Operation):
    def __init__(self, config):
        self._config = config

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        copy_cp = kwargs["checkpoint_copy"]
        source = _chunks.store_for(self._config, checkpoint.bank)
        target = _chunks.store_for(self._config, copy_cp.bank, like=source)
        tree = _tree(checkpoint, resource, source)
        keys = _streams(tree)
        try:
            source.get_manifest(_stream_name(checkpoint.id, resource.id, TREE_KEY))
            keys.append(TREE_KEY)
        except ManifestNotFound:  # an older checkpoint: the tree is copied with its section
            pass
        for key in keys:
            source.copy_to(target, _stream_name(checkpoint.id, resource.id, key),
                           _stream_name(copy_cp.id, resource.id, key))
        copy_cp.get_resource_bank_section(resource.id).update_object(
            "status", constants.CHECKPOINT_STATUS_AVAILABLE)


class DirectoryProtectionPlugin(protection_plugin.ProtectionPlugin):
    def __init__(self, config=None):
        super().__init__(config)
        _chunks.register_opts(config)

    def get_protect_operation(self, resource):
        return _Protect(self._config)

    def get_restore_operation(self, resource):
        return _Restore(self._config)

    def get_verify_operation(self, resource):
        return _Verify(self._config)

    def get_copy_operation(self, resource):
        return _Copy(self._config)

    def get_delete_operation(self, resource):
        return _Delete(self._config)

    @classmethod
    def get_supported_resources_types(cls):
        return [RESOURCE_TYPE]

    @classmethod
    def get_options_schema(cls, resource_type):
        return {"type": "object", "title": "Directory protection options", "properties": {}}

    @classmethod
    def get_restore_schema(cls, resource_type):
        return {"type": "object", "title": "Directory restore options", "properties": {
            "restore_path": {"type": "string", "title": "Restore path",
                             "description": "An absolute path under the [local_directory] "
                                            "roots: a new or empty directory to restore "
                                            "into."},
            "in_place": {"type": "boolean", "default": False, "title": "In place",
                         "description": "Restore over the original directory."}}}

    @classmethod
    def get_verify_schema(cls, resource_type):
        return {"type": "object", "properties": {}}
