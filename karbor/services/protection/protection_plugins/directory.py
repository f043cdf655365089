"""Protection plugin for Karbor::Local::Directory, on the bank's chunk store.

Protect walks the tree without following symlinks and streams every regular file into the
chunk store of the checkpoint's bank (the files one after the other in the stream
``dir/<checkpoint>/<resource>/d0``; files unchanged since the last checkpoint are not read
again, see "Files cache" below); the tree itself (types, modes, mtimes, owners, symlink
targets, hard links) is the ``tree`` object of the resource's bank section. Restore
rebuilds it under ``restore_path`` (in a staging directory renamed into place at the end)
or in place (``in_place: true``), never leaving a file whose data failed its integrity
check.

Nothing below a root is reached by a path string: both walk and write through directory
descriptors, each directory opened relative to its parent with ``O_NOFOLLOW``, so a
directory swapped for a symlink while they run is never followed out of the tree (it is
left out of a checkpoint; it fails a restore).
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import queue
import shutil
import stat
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor

from karbor.common import constants, exception
from karbor.services.protection import protection_plugin
from karbor.services.protection.chunkstore import reader, writer
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
OPEN_DIRS = 64         # directories a restore keeps open besides those jobs still write in
# directories held for pending reads or writes before waiting for some (more than a
# stream's batch of small sources not yet handed to a worker can hold, so the wait ends)
BUSY_DIRS = 2 * writer.BATCH_SOURCES
STAGING = ".karbor-restore-"  # staging directories and in-place temporary files start so

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a file swapped for a FIFO must not block the walk (it is then left out)
_O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_O_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# what opening an entry the walk listed gives when it was deleted or replaced since
_GONE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO, errno.EINVAL})


def _test_hook(name: str, **kw) -> None:
    """Called at named steps of protect and restore ("file_opened", "small_file", "entry",
    "file_created", "before_meta", "before_rename", "renamed"): tests replace it to change
    the file system at exactly that moment."""


class _Dir:
    """An open directory shared by the threads reading or creating its entries, closed
    when the last of them lets it go (``release``), or by ``close`` once none can still
    use it. Its lock is held while the descriptor is used (``with d as fd``), so a close
    on an error path never lets a late user reach whatever reuses the number."""

    __slots__ = ("_fd", "_refs", "_lock", "_closed")

    def __init__(self, fd: int, closed=None):
        self._fd = fd
        self._refs = 1
        self._lock = threading.Lock()
        self._closed = closed   # called with it once it is closed

    def __enter__(self) -> int:
        self._lock.acquire()
        if self._fd < 0:
            self._lock.release()
            raise OSError(errno.EBADF, "directory closed")
        return self._fd

    def __exit__(self, *exc) -> None:
        self._lock.release()

    def acquire(self) -> _Dir:
        with self._lock:
            self._refs += 1
        return self

    def release(self) -> None:
        with self._lock:
            self._refs -= 1
            if self._refs <= 0:
                self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            if self._closed is not None:
                self._closed(self)

    def open(self, name: str, flags: int, mode: int = 0o777) -> int:
        with self as fd:
            return os.open(name, flags, mode, dir_fd=fd)


def _stream_name(checkpoint_id: str, resource_id: str, key: str) -> str:
    return f"dir/{checkpoint_id}/{resource_id}/{key}"


def _source_path(resource, project_id: str | None = None) -> str:
    path = (resource.extra_info or {}).get("path") or resource.name
    real = protectable.check_path(path, project_id)
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


class _Readers:
    """The directories whose small files wait to be read on the chunk store's workers,
    each held open until its last one is read. The walk waits for some of them before it
    opens another directory, so that a tree of many tiny directories does not hold
    thousands of descriptors (a batch of the stream, not yet handed to a worker, holds
    fewer than ``BUSY_DIRS``: the wait ends)."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._pending: dict[_Dir, int] = {}

    def hold(self, d: _Dir) -> _Dir:
        with self._cond:
            n = self._pending.get(d, 0)
            if not n:
                d.acquire()
            self._pending[d] = n + 1
        return d

    def done(self, d: _Dir) -> None:
        with self._cond:
            n = self._pending.pop(d) - 1
            if n:
                self._pending[d] = n
            else:
                d.release()
                self._cond.notify_all()

    def wait(self, limit: int) -> None:
        with self._cond:
            while len(self._pending) > limit:
                if not self._cond.wait(timeout=1.0):
                    return  # none read for a second: a failed batch (its error will tell)


class _Source(str):
    """The top of a protected tree (its path) with what the walk holds open: ``root``,
    and in ``dirs`` (by relative path) each directory while its entries are handed out,
    so that they are read through it; ``opened`` lists every one, to close at the end."""

    root: _Dir
    dirs: dict[str, _Dir]
    opened: list[_Dir]
    readers: _Readers


def _source(top: str) -> _Source:
    src = _Source(top)
    src.root = _Dir(os.open(top, _O_DIR))
    src.dirs, src.opened, src.readers = {}, [src.root], _Readers()
    return src


def _walk(top: str, vanished: list):
    """(relative path, lstat) of everything below ``top``, parents first. A directory is
    entered through its parent's descriptor, never following a symlink, and only if it is
    the one the listing saw: a directory deleted or replaced (by a symlink to elsewhere,
    say) before the walk reaches it is added to ``vanished``, not read, so nothing outside
    the tree ever is."""
    src = top if isinstance(top, _Source) else _source(top)
    stack: list[tuple[str, _Dir | None, str, tuple[int, int] | None]] = [
        ("", None, "", None)]
    current = None
    try:
        while stack:
            rel, parent, name, ident = stack.pop()
            if parent is None:
                d = src.root
            else:
                src.readers.wait(BUSY_DIRS)
                try:
                    fd = parent.open(name, _O_DIR)
                except OSError as exc:
                    if exc.errno not in _GONE:
                        raise
                    vanished.append(rel)
                    continue
                finally:
                    parent.release()
                d = _Dir(fd)
                src.opened.append(d)
                fst = os.fstat(fd)
                if (fst.st_dev, fst.st_ino) != ident:
                    d.release()
                    vanished.append(rel)
                    continue
            current = d
            with d as fd, os.scandir(fd) as it:
                entries = sorted(it, key=lambda e: e.name)
            src.dirs[rel] = d
            for entry in entries:
                child = f"{rel}/{entry.name}" if rel else entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    vanished.append(child)
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append((child, d.acquire(), entry.name, (st.st_dev, st.st_ino)))
                yield child, st
            del src.dirs[rel]
            current = None
            d.release()
    finally:
        if current is not None:
            current.release()
        for _, parent, _, _ in stack:
            if parent is not None:
                parent.release()
        if src is not top:
            for d in src.opened:
                d.close()


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


def _opened(fd: int, ident: tuple[int, int]) -> os.stat_result | None:
    """The fstat of the file the walk listed, or None if what was opened is another one
    (replaced since: it is left out like a deleted file)."""
    fst = os.fstat(fd)
    return fst if (fst.st_dev, fst.st_ino) == ident else None


def _reader(path: str, rel: str, ident: tuple[int, int], parent: _Dir, name: str,
            readers: _Readers):
    """A small file's contents and fstat, read whole on a chunk-store worker through its
    directory's descriptor (``path`` only names it); no fstat if it was deleted or
    replaced since the walk (see _file_done)."""
    readers.hold(parent)

    def read():
        try:
            _test_hook("small_file", path=rel)
            fd = parent.open(name, _O_READ)
        except OSError as exc:
            if exc.errno not in _GONE:
                raise
            return b"", None
        finally:
            readers.done(parent)
        try:
            fst = _opened(fd, ident)
            if fst is None:
                return b"", None
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


def _estimate(top: str, progress, stop: threading.Event) -> None:
    """The progress estimate of a protect: the size and number of the regular files below
    ``top`` (hard links once), from a walk of their metadata beside the protect's own,
    through directory descriptors and never following a symlink, like it."""
    total = files = 0
    seen: set[tuple[int, int]] = set()
    try:
        stack = [os.open(top, _O_DIR)]
    except OSError:
        return
    try:
        while stack and not stop.is_set():
            dfd = stack.pop()
            try:
                with os.scandir(dfd) as it:
                    for entry in it:
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        if stat.S_ISDIR(st.st_mode):
                            try:
                                stack.append(os.open(entry.name, _O_DIR, dir_fd=dfd))
                            except OSError:
                                pass
                        elif stat.S_ISREG(st.st_mode):
                            if st.st_nlink > 1:
                                if (st.st_dev, st.st_ino) in seen:
                                    continue
                                seen.add((st.st_dev, st.st_ino))
                            total += st.st_size
                            files += 1
            except OSError:
                pass
            finally:
                os.close(dfd)
    finally:
        for dfd in stack:
            os.close(dfd)
    if not stop.is_set():
        progress.report(bytes_total=total, files_total=files)


def protect_tree(store: ChunkStore, top: str, checkpoint_id: str, resource_id: str,
                 progress=None) -> dict:
    """The tree of ``top`` (a resolved directory path), its files' data streamed into
    ``store``; entries deleted or replaced while it runs are left out (``vanished``).
    ``progress`` (the hook's reporter) learns the bytes and files done as the chunk store
    takes them, and an estimate of the total from a metadata walk run alongside."""
    started_ns = time.time_ns()
    top = str(top)
    src = _source(top)
    stop = threading.Event()
    if progress is not None:
        threading.Thread(target=_estimate, args=(top, progress, stop), daemon=True,
                         name="protect-estimate").start()
    try:
        return _protect(store, src, top, checkpoint_id, resource_id, started_ns, progress)
    finally:
        stop.set()
        for d in src.opened:  # those of small files a failed session never read
            d.close()


def _counted(done, progress):
    """``done`` that also counts the file as protected."""
    if progress is None:
        return done

    def counted(offset: int, size: int, fst: os.stat_result | None) -> None:
        done(offset, size, fst)
        if fst is not None:
            progress.add(bytes=size, files=1)
    return counted


def _protect(store: ChunkStore, src: _Source, top: str, checkpoint_id: str,
             resource_id: str, started_ns: int, progress=None) -> dict:
    with src.root as fd:
        root_st = os.fstat(fd)
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

        for rel, st in _walk(src, vanished):
            mode = st.st_mode
            up, _, name = rel.rpartition("/")
            parent = src.dirs[up]
            if stat.S_ISDIR(mode):
                entries.append(_entry(rel, st, "dir"))
            elif stat.S_ISLNK(mode):
                e = _entry(rel, st, "symlink")
                try:
                    with parent as dfd:
                        e["target"] = os.readlink(name, dir_fd=dfd)
                except OSError as exc:
                    if exc.errno not in _GONE:
                        raise
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
                    if progress is not None:
                        progress.add(files=1)
                    continue
                s = stream()
                done = _counted(_file_done(e, rel, streams[-1], files, vanished), progress)
                chunks = cache.lookup(rel, st)
                if chunks is not None and s.reuse(chunks, done, st):
                    continue
                if st.st_size <= SMALL_SOURCE:
                    s.write_small(_reader(os.path.join(top, rel), rel, ident, parent, name,
                                          src.readers), st.st_size, done)
                    continue
                try:
                    fd = parent.open(name, _O_READ)
                except OSError as exc:
                    if exc.errno not in _GONE:
                        raise
                    vanished.append(rel)
                    continue
                with os.fdopen(fd, "rb", buffering=0) as f:
                    fst = _opened(fd, ident)
                    if fst is None:
                        vanished.append(rel)
                        continue
                    _test_hook("file_opened", path=rel, source=top)
                    s.write(f, fst.st_size, done, fst)
            else:
                skipped.append(rel)  # sockets, FIFOs, devices: not data
        if data is not None:
            data.close()
        session.add_manifest(Manifest(_cache_name(resource_id), [], {
            "version": 1, "checkpoint": checkpoint_id, "source": top,
            "started_ns": started_ns, "streams": streams, "files": files}))
    if progress is not None:
        progress.report(new_bytes=session.stats.new_bytes,
                        bytes_added=session.stats.stored_bytes)
    if skipped:
        LOG.info("%d special files not protected in %s", len(skipped), top)
    if vanished:
        # Deleted or replaced while the walk went on: they are not in the checkpoint (nor
        # hard links whose recorded name was one of them, nor anything below a vanished
        # directory).
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
        LOG.warning("%d entries of %s were deleted or replaced while it was being "
                    "protected: %s", len(vanished), top, ", ".join(vanished[:10]))
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


def _check_rel(rel: str) -> None:
    """An entry's path must name something below the target: a tree is data from the
    bank, not to be trusted to stay inside."""
    if rel.startswith("/") or any(p in ("", ".", "..") for p in rel.split("/")):
        raise RestoreError(reason=f"entry {rel!r} would leave the target")


def _clear_at(dfd: int, name: str) -> None:
    """Remove what is at ``name`` in directory ``dfd`` (a symlink itself, never what it
    points to)."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dfd)
    else:
        os.unlink(name, dir_fd=dfd)


def _make_dir(d: _Dir, name: str) -> None:
    """A directory at ``name``: one already there is kept (in place), a file or symlink
    there is replaced (not followed)."""
    with d as dfd:
        try:
            os.mkdir(name, 0o700, dir_fd=dfd)
            return
        except FileExistsError:
            pass
        if stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
            return
        os.unlink(name, dir_fd=dfd)
        os.mkdir(name, 0o700, dir_fd=dfd)


def _open_path(path: str) -> _Dir:
    """The directory ``path`` (resolved: the roots may be reached through symlinks),
    opened from ``/`` one component at a time without following one, so that a symlink
    swapped in after it was checked fails instead of leading elsewhere; missing
    components are created."""
    fd = os.open("/", _O_DIR)
    try:
        for part in os.path.realpath(path).split("/"):
            if not part:
                continue
            try:
                nfd = os.open(part, _O_DIR, dir_fd=fd)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
                nfd = os.open(part, _O_DIR, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except NotADirectoryError:
        os.close(fd)
        raise RestoreError(reason=f"{path!r} is not a directory (or was replaced by a "
                                  "symlink)") from None
    except BaseException:
        os.close(fd)
        raise
    return _Dir(fd)


class _Dirs:
    """The directories of a restore target by relative path, each opened through its
    parent's descriptor without following a symlink: a directory that became a symlink
    since it was made fails the restore instead of being written through. At most
    ``limit`` stay open here (least recently used closed first); a job still writing
    into one holds it open until it is done."""

    def __init__(self, root: _Dir, limit: int = OPEN_DIRS):
        self.root = root
        self._open: OrderedDict[str, _Dir] = OrderedDict()
        self._live: set[_Dir] = set()   # opened here, not closed yet
        self._limit = limit

    def __len__(self) -> int:
        return len(self._live)

    def get(self, rel: str) -> _Dir:
        """``rel``'s directory, acquired: the caller releases it."""
        if not rel:
            return self.root.acquire()
        d = self._open.get(rel)
        if d is not None:
            self._open.move_to_end(rel)
            return d.acquire()
        parent = self.get(os.path.dirname(rel))
        try:
            fd = parent.open(os.path.basename(rel), _O_DIR)
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                raise RestoreError(reason=f"{rel!r} in the target is no longer a directory "
                                          "(a symlink?): nothing is written through it"
                                   ) from None
            raise
        finally:
            parent.release()
        d = _Dir(fd, self._live.discard)
        self._live.add(d)
        self._open[rel] = d
        if len(self._open) > self._limit:
            self._open.popitem(last=False)[1].release()
        return d.acquire()

    @contextlib.contextmanager
    def use(self, rel: str):
        d = self.get(rel)
        try:
            yield d
        finally:
            d.release()

    def forget(self) -> None:
        """Open every directory again when next used."""
        while self._open:
            self._open.popitem()[1].release()

    def close(self) -> None:
        """Close them all, also those of jobs that never ran (none runs any more)."""
        self.forget()
        for d in list(self._live):
            d.close()


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

    def __init__(self, store: ChunkStore, plan, cuts, progress=None):
        self._chunks = (reader.ChunkReader(store, views=True).chunks(plan) if plan
                        else iter(()))
        self._cuts = cuts
        self._i = 0
        self._progress = progress

    def take(self, count: int):
        for _ in range(count):
            _, data = next(self._chunks)
            lo, hi = self._cuts[self._i]
            self._i += 1
            if self._progress is not None:
                self._progress.add(bytes=hi - lo)
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


def _meta_fd(fd: int, e: dict, as_root: bool) -> None:
    """Owner, mode and mtime through the descriptor of what was made: nothing is looked up
    by name, so nothing can be followed."""
    if as_root:
        os.chown(fd, e["uid"], e["gid"])
    os.chmod(fd, e["mode"])
    os.utime(fd, ns=(e["mtime_ns"], e["mtime_ns"]))


def _symlink_meta(dfd: int, name: str, e: dict, as_root: bool) -> None:
    # Linux has no mode for a symlink; its owner and mtime are its own (not followed).
    if as_root:
        os.chown(name, e["uid"], e["gid"], dir_fd=dfd, follow_symlinks=False)
    if os.utime in os.supports_follow_symlinks:
        os.utime(name, ns=(e["mtime_ns"], e["mtime_ns"]), dir_fd=dfd,
                 follow_symlinks=False)


def _restore_file(d: _Dir, name: str, tmp: str | None, e: dict, pieces,
                  as_root: bool) -> None:
    """Write a file under a temporary name in ``d``, then rename it over what is at
    ``name``; or, with no ``tmp`` (into a staging directory), create it at ``name``. A
    file whose data fails is removed either way; one left by a killed attempt under the
    same (deterministic) name is replaced."""
    made = tmp or name
    try:
        fd = d.open(made, _O_CREATE, 0o600)
    except FileExistsError:
        with d as dfd:
            _clear_at(dfd, made)
        fd = d.open(made, _O_CREATE, 0o600)
    try:
        _test_hook("file_created", path=e["path"])
        if e.get("stream"):
            try:
                _write_data(pieces, fd, e["size"], bool(e.get("sparse")))
            except (ChunkStoreError, RestoreError) as exc:
                raise RestoreError(reason=f"file {e['path']!r} not restored: "
                                          f"{exc.msg}") from exc
        _meta_fd(fd, e, as_root)
        os.close(fd)
        fd = -1
        if tmp is not None:
            with d as dfd:
                try:
                    os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                except OSError as exc:
                    if exc.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                        raise
                    _clear_at(dfd, name)  # a directory where the file goes
                    os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with d as dfd, contextlib.suppress(FileNotFoundError):
            os.unlink(made, dir_fd=dfd)
        raise


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
    try:
        for i, (d, name, tmp, e, data) in enumerate(batch):
            _restore_file(d, name, tmp, e, data, as_root)
            d.release()
            batch[i] = None
    finally:
        for item in batch:  # those after a failure
            if item is not None:
                item[0].release()


def _restore_big(d: _Dir, name: str, tmp: str | None, e: dict, feed, as_root: bool) -> None:
    try:
        _restore_file(d, name, tmp, e, feed, as_root)
    finally:
        d.release()


def _restore_key(checkpoint_id: str, resource_id: str, target: str) -> str:
    """The same for every attempt of one restore (a resumed one finds what a killed one
    left), different for another target or checkpoint."""
    return hashlib.sha256(f"{checkpoint_id}\0{resource_id}\0{target}".encode()
                          ).hexdigest()[:24]


def restore_tree(store: ChunkStore, tree: dict, target: str, checkpoint_id: str,
                 resource_id: str, in_place: bool, progress=None) -> None:
    """Rebuild ``tree`` at ``target`` (an absolute path). In place, over what is there;
    otherwise in the staging directory ``<parent>/.karbor-restore-<key>`` renamed to
    ``target`` (absent or an empty directory) once complete, so a killed restore never
    leaves a partial tree under the final name, and running it again (the same ids and
    target) starts the staging afresh, or finds the tree already renamed into place."""
    as_root = os.geteuid() == 0
    target = os.path.abspath(target)
    key = _restore_key(checkpoint_id, resource_id, target)
    name = os.path.basename(target)
    if not name:
        raise RestoreError(reason=f"{target!r} cannot be restored to")
    parent = _open_path(os.path.dirname(target))
    try:
        if in_place:
            _make_dir(parent, name)
            root = _Dir(_open_dir(parent, name, target))
            try:
                _restore_into(store, tree, root, checkpoint_id, resource_id, True,
                              as_root, f"{STAGING}{key}-", progress)
            finally:
                root.close()
            return
        with parent as pfd:
            try:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
        if st is not None and (not stat.S_ISDIR(st.st_mode) or not _empty(parent, name)):
            if stat.S_ISDIR(st.st_mode) and _restored(tree, parent, name, as_root):
                LOG.info("%s already holds the restored tree (an earlier attempt's)", target)
                return
            raise exception.InvalidInput(
                reason=f"restore_path {target!r} exists and is not an empty directory")
        stage = f"{STAGING}{key}"
        _clear_stale(parent, stage, target)
        with parent as pfd:
            os.mkdir(stage, 0o700, dir_fd=pfd)
        ident = None
        try:
            root = _Dir(_open_dir(parent, stage, target))
            try:
                with root as fd:
                    _lock(fd, target)
                    ident = os.fstat(fd)
                _restore_into(store, tree, root, checkpoint_id, resource_id, False,
                              as_root, None, progress)
                _test_hook("before_rename",
                           staging=os.path.join(os.path.dirname(target), stage), target=target)
                with parent as pfd:
                    if not os.path.samestat(ident, os.stat(stage, dir_fd=pfd,
                                                           follow_symlinks=False)):
                        raise RestoreError(reason=f"the staging directory of {target!r} "
                                                  "was replaced")
                    try:
                        os.rename(stage, name, src_dir_fd=pfd, dst_dir_fd=pfd)
                    except OSError as exc:
                        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                            raise
                        raise exception.InvalidInput(
                            reason=f"restore_path {target!r} exists and is not an empty "
                                   "directory") from None
            finally:
                root.close()   # (and its lock)
        except BaseException:
            with parent as pfd:
                try:
                    if ident is not None and os.path.samestat(
                            ident, os.stat(stage, dir_fd=pfd, follow_symlinks=False)):
                        _clear_at(pfd, stage)   # (not another attempt's)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    LOG.warning("could not remove the staging directory %s of %s: %s",
                                stage, target, exc)
            raise
        _test_hook("renamed", target=target)
    finally:
        parent.close()


def _lock(fd: int, target: str) -> None:
    """Hold the staging directory against another attempt of the same restore (one that
    took over a lapsed lease while this one still runs): it must neither remove nor
    rename what this one writes."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RestoreError(reason=f"another restore into {target!r} is running") from None


def _clear_stale(parent: _Dir, stage: str, target: str) -> None:
    """Remove the staging directory a killed attempt left (not one still in use)."""
    try:
        fd = parent.open(stage, _O_DIR)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        fd = -1   # not a directory: removed all the same
    try:
        if fd >= 0:
            _lock(fd, target)
        LOG.info("removing %s, left by an earlier attempt to restore %s", stage, target)
        with parent as pfd:
            _clear_at(pfd, stage)
    finally:
        if fd >= 0:
            os.close(fd)


def _open_dir(parent: _Dir, name: str, target: str) -> int:
    try:
        return parent.open(name, _O_DIR)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            raise RestoreError(reason=f"{target!r} is not a directory (was it replaced by "
                                      "a symlink?)") from None
        raise


def _empty(parent: _Dir, name: str) -> bool:
    fd = parent.open(name, _O_DIR)
    try:
        return not os.listdir(fd)
    finally:
        os.close(fd)


def _restored(tree: dict, parent: _Dir, name: str, as_root: bool) -> bool:
    """Does ``name`` hold exactly the tree (types, sizes, modes, mtimes, owners)? What an
    attempt killed after its rename, before the restore was recorded as done, leaves."""
    found: dict[str, os.stat_result] = {}
    try:
        with parent as pfd:
            found[""] = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            for top, dirnames, filenames, dfd in os.fwalk(name, dir_fd=pfd):
                rel = os.path.relpath(top, name)
                for n in dirnames + filenames:
                    found[n if rel == "." else f"{rel}/{n}"] = os.stat(
                        n, dir_fd=dfd, follow_symlinks=False)
    except OSError:
        return False
    if len(found) != len(tree["entries"]):
        return False
    kinds = {"dir": stat.S_ISDIR, "file": stat.S_ISREG, "hardlink": stat.S_ISREG,
             "symlink": stat.S_ISLNK}
    for e in tree["entries"]:
        st = found.get(e["path"])
        if st is None or not kinds.get(e["type"], lambda m: False)(st.st_mode):
            return False
        if e["type"] == "hardlink":
            continue
        if (st.st_mtime_ns != e["mtime_ns"] or e["type"] == "file" and st.st_size != e["size"]
                or e["type"] != "symlink" and stat.S_IMODE(st.st_mode) != e["mode"]
                or as_root and (st.st_uid, st.st_gid) != (e["uid"], e["gid"])):
            return False
    return True


def _restore_into(store: ChunkStore, tree: dict, root: _Dir, checkpoint_id: str,
                  resource_id: str, in_place: bool, as_root: bool,
                  tmp_prefix: str | None, progress=None) -> None:
    entries = tree["entries"]
    plan, cuts, counts = _plan(store, tree, checkpoint_id, resource_id)
    if progress is not None:
        sized = [e.get("size", 0) for e in entries if e["type"] == "file"]
        progress.report(bytes_total=sum(sized), files_total=len(sized), bytes_done=0,
                        files_done=0)
    pieces = _Pieces(store, plan, cuts, progress)
    dirs = _Dirs(root)
    made = []     # the directories' entries, for their metadata at the end
    n_file = n_tmp = 0
    # Small files are written by a few threads, many per job (creating files is most of
    # their cost); big ones by another thread, fed their pieces by this one. Each job
    # holds the directory it writes in (not a path to it).
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
        while jobs and (len(jobs) > 16 or held > limit or len(dirs) > BUSY_DIRS):
            fut, n = jobs.popleft()
            held -= n
            fut.result()

    try:
        try:
            for e in entries:
                rel = e["path"]
                _test_hook("entry", path=rel)
                kind = e["type"]
                if rel:
                    _check_rel(rel)
                up, name = os.path.split(rel)
                if kind == "dir":
                    if rel:
                        with dirs.use(up) as d:
                            _make_dir(d, name)
                    made.append(e)
                elif kind == "file":
                    if progress is not None:
                        progress.add(files=1)
                    n_tmp += 1
                    tmp = f"{tmp_prefix}{n_tmp}" if in_place else None
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
                        batch.append((dirs.get(up), name, tmp, e, data))
                        batch_bytes += size
                        held += size
                        if len(batch) >= BATCH_FILES or batch_bytes >= SMALL_FILE:
                            flush()
                        settle(SMALL_FILES_HELD)
                    else:
                        feed = _Feed()
                        writer = big.submit(_restore_big, dirs.get(up), name, tmp, e, feed,
                                            as_root)
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
                    with dirs.use(up) as d, d as dfd:
                        _clear_at(dfd, name)
                        os.symlink(e["target"], name, dir_fd=dfd)
                        _symlink_meta(dfd, name, e, as_root)
                elif kind == "hardlink":
                    settle(-1)  # its target is written
                    source = e["target"]
                    _check_rel(source)
                    sup, sname = os.path.split(source)
                    with (dirs.use(sup) as s, dirs.use(up) as d, d as dfd,
                          contextlib.nullcontext(dfd) if s is d else s as sfd):
                        _clear_at(dfd, name)
                        os.link(sname, name, src_dir_fd=sfd, dst_dir_fd=dfd,
                                follow_symlinks=False)
            settle(-1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            big.shutdown(wait=True, cancel_futures=True)
            pieces.close()
        # Directories last, deepest first, so creating their children does not touch
        # mtimes; each opened again (not followed), so one swapped for a symlink since it
        # was made fails the restore rather than changing what the symlink points to.
        dirs.forget()
        _test_hook("before_meta", entries=len(entries))
        for e in reversed(made):
            with dirs.use(e["path"]) as d, d as fd:
                _meta_fd(fd, e, as_root)
    finally:
        dirs.close()


# ---------------------------------------------------------------------------------- hooks

class _Protect(protection_plugin.Operation):
    def __init__(self, config):
        self._config = config

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", "protecting")
        top = _source_path(resource, protectable.project_of(context))
        store = _chunks.store_for(self._config, checkpoint.bank)
        tree = protect_tree(store, top, checkpoint.id, resource.id, kwargs.get("progress"))
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
            project = protectable.project_of(context)
            target, in_place = _restore_target(parameters, tree["source"], project)
            # (into a new path: staged beside it, so a failure leaves nothing at target;
            # a resumed attempt, same ids and target, finishes what a killed one began)
            restore_tree(store, tree, target, checkpoint.id, resource.id, in_place,
                         kwargs.get("progress"))
        except Exception as exc:
            if recorder is not None:
                recorder.update_resource_status(resource.type, resource.id, "error",
                                                _chunks.message(exc))
            raise
        new_id = protectable.directory_id(target)
        kwargs.get("new_resources", {})[resource.id] = new_id
        if recorder is not None:
            recorder.update_resource_status(resource.type, new_id, "available")


def _restore_target(parameters: dict, source: str, project: str | None) -> tuple[str, bool]:
    """(target, in_place) of a restore; InvalidInput naming the parameter when unworkable."""
    in_place = _params.flag(parameters, "in_place")
    path = parameters.get("restore_path")
    if in_place == bool(path):
        raise exception.InvalidInput(
            reason="give either restore_path (a new or empty directory) or in_place: true"
            + (", not both" if in_place else ""))
    if in_place:
        protectable.check_path(source, project)
        return source, True
    if not isinstance(path, str) or not os.path.isabs(path):
        raise exception.InvalidInput(reason=f"restore_path {path!r} is not an absolute path")
    target = os.path.abspath(path)
    protectable.check_path(target, project)
    return target, False


def _check_new_target(target: str) -> None:
    """Refuse now what restore_tree would refuse after the operation started."""
    try:
        _check_new_target_at(target)
    except OSError as exc:
        raise exception.InvalidInput(
            reason=f"restore_path {target!r} cannot be examined: "
                   f"{exc.strerror or exc}") from None


def _check_new_target_at(target: str) -> None:
    parent = os.path.dirname(target)
    if not os.path.isdir(parent) or os.path.islink(parent):
        raise exception.InvalidInput(
            reason=f"restore_path {target!r}: its parent directory does not exist")
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode) or os.listdir(target):
        raise exception.InvalidInput(
            reason=f"restore_path {target!r} exists and is not an empty directory")


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
    def check_restore_parameters(cls, resource, parameters, context):
        source = (resource.extra_info or {}).get("path") or resource.name
        target, in_place = _restore_target(parameters, source,
                                           protectable.project_of(context))
        if not in_place:
            _check_new_target(target)

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
