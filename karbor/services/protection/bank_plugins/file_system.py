"""A bank in a local directory: atomic writes (temp + fsync + rename), keys kept under the root."""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import tempfile
import time
import uuid
from typing import Any

from oslo_config import cfg

from karbor.common import exception
from karbor.services.protection.bank_plugin import BankPlugin, BinaryParts, LeasePlugin

BINARY_MAGIC = b"\x00KARBOR-BINARY\x00"
# map every page at once (one fault instead of one per page) where Python has the flag
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc.syncfs.argtypes = [ctypes.c_int]
except (OSError, AttributeError):
    _libc = None

fs_bank_opts = [
    cfg.StrOpt("file_system_bank_path",
               help="Root directory of the bank. Default: <state_path>/bank."),
    cfg.StrOpt("bank_object_container", default="karbor",
               help="Subdirectory of the root that holds the objects."),
    cfg.IntOpt("lease_expire_window", default=600,
               help="Seconds a writer's lease stays valid without renewal."),
]


# "no room": the device is full or the user's quota is used up
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def list_opts():
    return [("file_system_bank_plugin", fs_bank_opts)]


def encode(value: Any) -> bytes | BinaryParts:
    if isinstance(value, BinaryParts):
        return BinaryParts((BINARY_MAGIC, *value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return BinaryParts((BINARY_MAGIC, value))
    try:
        return json.dumps(value).encode()
    except (TypeError, ValueError) as exc:
        raise exception.BankError(reason=f"value is neither bytes nor JSON: {exc}") from None


def decode(data: bytes) -> Any:
    if data.startswith(BINARY_MAGIC):
        return data[len(BINARY_MAGIC):]
    return json.loads(data)


class FileSystemBankPlugin(BankPlugin, LeasePlugin):
    accepts_parts = True

    def __init__(self, config=None, root: str | None = None,
                 group: str = "file_system_bank_plugin"):
        super().__init__(config)
        container = "karbor"
        expire = 600
        if root is None and config is not None:
            config.register_opts(fs_bank_opts, group=group)
            section = config[group]
            root = section.file_system_bank_path
            container = section.bank_object_container
            expire = section.lease_expire_window
        if root is None:
            from karbor.common.config import CONF

            # A copy bank must not share the primary bank's directory by default.
            default_dir = "bank" if group == "file_system_bank_plugin" \
                else group.replace("_", "-")
            root = os.path.join(CONF.state_path, default_dir)
        self._root = os.path.realpath(os.path.join(root, container))
        self._lease_expire = expire
        os.makedirs(self._root, exist_ok=True)
        self._owner_id = str(uuid.uuid4())

    @property
    def root(self) -> str:
        return self._root

    def _path(self, key: str) -> str:
        path = os.path.realpath(os.path.join(self._root, key.lstrip("/")))
        if path != self._root and not path.startswith(self._root + os.sep):
            raise exception.InvalidBankKey(key=key, reason="escapes the bank root")
        return path

    def update_object(self, key, value, context=None):
        """Write atomically (temp file + rename): readers see the old or the new value.

        Durability comes from ``flush()``, which the engine calls before it declares
        anything complete; a crash before that loses only work not yet promised.
        """
        path = self._path(key)
        data = encode(value)
        directory = os.path.dirname(path)
        try:
            os.makedirs(directory, exist_ok=True)
            if os.path.isdir(path):
                raise IsADirectoryError(path)
        except OSError as exc:
            # A key that is also a "directory" of other keys (or the reverse) cannot
            # exist side by side on a file system.
            if exc.errno in _NO_SPACE:
                raise exception.BankFull(bank=self._root, key=key) from None
            raise exception.BankError(
                reason=f"cannot store {key}: {type(exc).__name__}: {exc.strerror or exc}"
            ) from None
        try:
            self._write_file(directory, path, data)
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                # Said plainly, and as a bank error: a raw OSError named a temporary file
                # and was retried as if the condition could pass.
                raise exception.BankFull(bank=self._root, key=key) from None
            raise

    @staticmethod
    def _write_file(directory: str, path: str, data) -> None:
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        except FileNotFoundError:
            # A concurrent delete removed the directory once it was empty: recreate it.
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                if isinstance(data, BinaryParts):
                    for part in data:
                        f.write(part)
                else:
                    f.write(data)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def flush(self) -> None:
        """Make every write so far durable: one syncfs() of the bank's filesystem."""
        fd = os.open(self._root, os.O_RDONLY)
        try:
            if _libc is not None and _libc.syncfs(fd) == 0:
                return
            os.sync()
        finally:
            os.close(fd)

    def get_object(self, key, context=None):
        path = self._path(key)
        try:
            with open(path, "rb", buffering=0) as f:
                head = f.read(len(BINARY_MAGIC))
                if head == BINARY_MAGIC:
                    return f.readall()  # binary (a pack: big): read once, not copied
                data = head + f.readall()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise exception.BankObjectNotFound(key=key) from None
        return decode(data)

    def get_buffer(self, key, context=None):
        """A binary object mapped from its file: read straight from the page cache, with
        no copy into fresh memory (packs are immutable: written once, renamed in place,
        deleted whole, so the mapping cannot shrink under a reader)."""
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise exception.BankObjectNotFound(key=key) from None
        try:
            size = os.fstat(fd).st_size
            if size < len(BINARY_MAGIC) or os.pread(fd, len(BINARY_MAGIC), 0) != BINARY_MAGIC:
                raise exception.BankError(reason=f"{key} is not a binary object")
            if size == len(BINARY_MAGIC):
                return b""
            mapped = mmap.mmap(fd, size, flags=_MAP_FLAGS, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        return memoryview(mapped)[len(BINARY_MAGIC):]

    def list_objects(self, prefix=None, limit=None, marker=None, sort_dir=None, context=None):
        """Keys under ``prefix`` in key order (``desc`` = newest first for timestamped keys)."""
        prefix = prefix or "/"
        base = self._path(prefix.rsplit("/", 1)[0] or "/")
        keys = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".tmp-")]
            for name in filenames:
                if name.startswith(".tmp-"):
                    continue
                full = os.path.join(dirpath, name)
                key = "/" + os.path.relpath(full, self._root).replace(os.sep, "/")
                if key.startswith(prefix):
                    keys.append(key)
        reverse = sort_dir == "desc"
        keys.sort(reverse=reverse)
        if marker:
            keys = [k for k in keys if (k < marker if reverse else k > marker)]
        if limit is not None:
            keys = keys[:limit]
        return keys

    def delete_object(self, key, context=None):
        path = self._path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        # Remove now-empty parent directories, never the root itself.
        directory = os.path.dirname(path)
        while directory != self._root and directory.startswith(self._root):
            try:
                os.rmdir(directory)
            except OSError:
                break
            directory = os.path.dirname(directory)

    def get_owner_id(self, context=None):
        return self._owner_id

    # Leases: a file per live writer holding its expiry time.
    def _lease_key(self):
        return f"/leases/{self._owner_id}"

    def acquire_lease(self):
        self.update_object(self._lease_key(), {"owner_id": self._owner_id,
                                               "expires": time.time() + self._lease_expire})

    def renew_lease(self):
        self.acquire_lease()

    def check_lease_validity(self):
        try:
            lease = self.get_object(self._lease_key())
        except exception.BankObjectNotFound:
            return False
        return lease.get("expires", 0) > time.time()

    def is_owner_alive(self, owner_id: str) -> bool:
        try:
            lease = self.get_object(f"/leases/{owner_id}")
        except exception.BankObjectNotFound:
            return False
        return lease.get("expires", 0) > time.time()
