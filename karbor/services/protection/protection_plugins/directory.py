"""Protection plugin for Karbor::Local::Directory, on the bank's chunk store.

Protect walks the tree without following symlinks and streams every regular file into the
chunk store of the checkpoint's bank (manifest ``dir/<checkpoint>/<resource>/f<n>``); the
tree itself (types, modes, mtimes, owners, symlink targets, hard links) is the ``tree``
object of the resource's bank section. Restore rebuilds it under ``restore_path`` or in
place (``in_place: true``), never following a symlink out of the target and never
leaving a file whose data failed its integrity check.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import threading

from karbor.common import constants, exception
from karbor.services.protection import protection_plugin
from karbor.services.protection.chunkstore.errors import ChunkStoreError
from karbor.services.protection.chunkstore.store import ChunkStore
from karbor.services.protection.protectable_plugins import directory as protectable
from karbor.services.protection.protection_plugins import _chunks, _params

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = protectable.RESOURCE_TYPE
TREE_VERSION = 1
BLOCK = 4096          # zero runs of this size (aligned) become holes on restore
READ_SIZE = 1 << 20

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

def _walk(top: str):
    """(relative path, lstat) of everything below ``top``, parents first, never following
    a symlink."""
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(top, rel) if rel else top) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            child = os.path.join(rel, entry.name) if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            yield child, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(child)


def _entry(rel: str, st: os.stat_result, kind: str) -> dict:
    return {"path": rel, "type": kind, "mode": stat.S_IMODE(st.st_mode),
            "mtime_ns": st.st_mtime_ns, "uid": st.st_uid, "gid": st.st_gid}


def protect_tree(store: ChunkStore, top: str, checkpoint_id: str, resource_id: str) -> dict:
    root_st = os.lstat(top)
    entries = [_entry("", root_st, "dir")]
    links: dict[tuple[int, int], str] = {}
    skipped = []
    n = 0
    with store.session() as session:
        for rel, st in _walk(top):
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                entries.append(_entry(rel, st, "dir"))
            elif stat.S_ISLNK(mode):
                e = _entry(rel, st, "symlink")
                e["target"] = os.readlink(os.path.join(top, rel))
                entries.append(e)
            elif stat.S_ISREG(mode):
                ident = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and ident in links:
                    entries.append({"path": rel, "type": "hardlink", "target": links[ident]})
                    continue
                if st.st_nlink > 1:
                    links[ident] = rel
                e = _entry(rel, st, "file")
                fd = os.open(os.path.join(top, rel), os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb", buffering=0) as f:
                    fst = os.fstat(f.fileno())
                    if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
                        raise exception.KarborException(
                            message=f"{rel} changed while it was being protected")
                    if fst.st_size:
                        key = f"f{n}"
                        n += 1
                        manifest = session.write_stream(
                            f, _stream_name(checkpoint_id, resource_id, key))
                        e["stream"] = key
                        e["size"] = manifest.size
                    else:
                        e["size"] = 0
                    e["sparse"] = fst.st_blocks * 512 < fst.st_size
                entries.append(e)
            else:
                skipped.append(rel)  # sockets, FIFOs, devices: not data
    if skipped:
        LOG.info("%d special files not protected in %s", len(skipped), top)
    return {"version": TREE_VERSION, "source": top, "entries": entries, "skipped": skipped}


def _streams(tree: dict) -> list[str]:
    return [e["stream"] for e in tree["entries"] if e.get("stream")]


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


def _write_sparse(store: ChunkStore, name: str, fd: int, size: int) -> None:
    """Write the stream, seeking over aligned all-zero blocks so they stay holes."""
    zero = bytes(BLOCK)
    pos = 0
    pending = b""
    for piece in store.read_stream(name):
        buf = pending + piece if pending else piece
        mv = memoryview(buf)
        i = 0
        while len(mv) - i >= BLOCK:
            block = mv[i:i + BLOCK]
            if block != zero:
                # write runs of non-zero blocks at once
                j = i + BLOCK
                while len(mv) - j >= BLOCK and mv[j:j + BLOCK] != zero:
                    j += BLOCK
                os.pwrite(fd, mv[i:j], pos)
                pos += j - i
                i = j
            else:
                pos += BLOCK
                i += BLOCK
        pending = bytes(mv[i:])
    if pending:
        if pending.count(0) != len(pending):
            os.pwrite(fd, pending, pos)
        pos += len(pending)
    if pos != size:
        raise RestoreError(reason=f"stream {name} has {pos} bytes, expected {size}")
    os.ftruncate(fd, size)


def _apply_meta(path: str, e: dict, as_root: bool, symlink: bool = False) -> None:
    if as_root:
        os.chown(path, e["uid"], e["gid"], follow_symlinks=False)
    if not symlink:
        os.chmod(path, e["mode"])
    if symlink and os.utime not in os.supports_follow_symlinks:
        return
    os.utime(path, ns=(e["mtime_ns"], e["mtime_ns"]), follow_symlinks=not symlink)


def restore_tree(store: ChunkStore, tree: dict, target: str, checkpoint_id: str,
                 resource_id: str, in_place: bool) -> None:
    as_root = os.geteuid() == 0
    os.makedirs(target, exist_ok=True)
    target_real = os.path.realpath(target)
    entries = tree["entries"]
    dirs = []
    for e in entries:
        rel = e["path"]
        path = os.path.join(target, rel) if rel else target
        if rel:
            if os.path.isabs(rel) or ".." in rel.split(os.sep):
                raise RestoreError(reason=f"entry {rel!r} would leave the target")
            _inside(target_real, os.path.dirname(path))
        kind = e["type"]
        if kind == "dir":
            if rel:
                _clear(path, keep_dir=in_place)
                if not os.path.isdir(path) or os.path.islink(path):
                    os.mkdir(path, 0o700)
            dirs.append((path, e))
        elif kind == "file":
            _clear(path, keep_dir=False)
            tmp = os.path.join(os.path.dirname(path), f".karbor-restore-{os.getpid()}-"
                               f"{threading.get_ident()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                if e.get("stream"):
                    try:
                        _write_sparse(store, _stream_name(checkpoint_id, resource_id,
                                                          e["stream"]), fd, e["size"])
                    except ChunkStoreError as exc:
                        raise RestoreError(reason=f"file {rel!r} not restored: "
                                                  f"{exc.msg}") from exc
                os.close(fd)
                fd = -1
                os.rename(tmp, path)
            except BaseException:
                if fd >= 0:
                    os.close(fd)
                os.unlink(tmp)
                raise
            _apply_meta(path, e, as_root)
        elif kind == "symlink":
            _clear(path, keep_dir=False)
            os.symlink(e["target"], path)
            _apply_meta(path, e, as_root, symlink=True)
        elif kind == "hardlink":
            _clear(path, keep_dir=False)
            source = os.path.join(target, e["target"])
            _inside(target_real, source)
            os.link(source, path, follow_symlinks=False)
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
        section.update_object("tree", tree)
        section.update_object("status", constants.CHECKPOINT_STATUS_AVAILABLE)


def _tree(checkpoint, resource) -> dict:
    try:
        tree = checkpoint.get_resource_bank_section(resource.id).get_object("tree")
    except exception.BankObjectNotFound:
        raise RestoreError(reason=f"no tree of {resource.id} in the bank") from None
    if not isinstance(tree, dict) or tree.get("version") != TREE_VERSION:
        raise RestoreError(reason=f"the tree of {resource.id} has an unknown format")
    return tree


class _Restore(protection_plugin.Operation):
    def __init__(self, config):
        self._config = config

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        recorder = kwargs.get("restore")
        try:
            tree = _tree(checkpoint, resource)
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
            store = _chunks.store_for(self._config, checkpoint.bank)
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


class _Verify(protection_plugin.Operation):
    def __init__(self, config):
        self._config = config

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        recorder = kwargs.get("verify")
        problems = []
        try:
            tree = _tree(checkpoint, resource)
            store = _chunks.store_for(self._config, checkpoint.bank)
            for e in tree["entries"]:
                if not e.get("stream"):
                    continue
                report = store.verify(_stream_name(checkpoint.id, resource.id, e["stream"]))
                if not report.ok:
                    problems.append(f"corrupt data in {e['path']!r} ({len(report.bad)} bad "
                                    f"chunk(s)): {report.bad[0]['reason']}")
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
        tree = _tree(checkpoint, resource)
        for key in _streams(tree):
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
