"""The bank SDK: a key/value object store holding checkpoints, confined and validated.

``BankPlugin`` is what a storage backend implements; ``Bank`` and ``BankSection``
are what the engine and plugins use: they validate keys and confine a plugin
to its own prefix.  Values that are not ``bytes`` are stored as JSON; ``bytes``
are stored as bytes (the original JSON-encoded them, which broke binary data), and so is
``BinaryParts``: one binary value given as consecutive buffers.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable
from typing import Any

from karbor.common import exception

_KEY_RE = re.compile(r"^[A-Za-z0-9/_.\-@#:]+(?<!/)$")


class BinaryParts(tuple):
    """A binary value held as consecutive buffers, so that a big object assembled from
    pieces (a pack of chunk blobs) need not be copied into one buffer: a plugin that sets
    ``accepts_parts`` writes the parts one after the other; any other gets ``bytes``."""

    __slots__ = ()

    def __bytes__(self) -> bytes:
        return b"".join(self)

    @property
    def nbytes(self) -> int:
        return sum(memoryview(p).nbytes for p in self)


class LeasePlugin(abc.ABC):
    @abc.abstractmethod
    def acquire_lease(self) -> None: ...

    @abc.abstractmethod
    def renew_lease(self) -> None: ...

    @abc.abstractmethod
    def check_lease_validity(self) -> bool: ...


class BankPlugin(abc.ABC):
    accepts_parts = False   # update_object takes BinaryParts as they are

    def __init__(self, config=None):
        self._config = config

    @abc.abstractmethod
    def update_object(self, key: str, value: Any, context=None) -> None: ...

    @abc.abstractmethod
    def get_object(self, key: str, context=None) -> Any: ...

    @abc.abstractmethod
    def list_objects(self, prefix: str | None = None, limit: int | None = None,
                     marker: str | None = None, sort_dir: str | None = None,
                     context=None) -> list[str]: ...

    @abc.abstractmethod
    def delete_object(self, key: str, context=None) -> None: ...

    @abc.abstractmethod
    def get_owner_id(self, context=None) -> str: ...

    def flush(self) -> None:
        """Make all writes so far durable; backends whose writes already are need nothing."""
        return None


def normalize_prefix(prefix: str | None) -> str:
    """Like a key, but a trailing ``/`` (a directory-style prefix) is allowed."""
    if prefix in (None, "", "/"):
        return "/"
    trailing = prefix.endswith("/")
    key = normalize_key(prefix.rstrip("/"))
    return key + "/" if trailing else key


def normalize_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise exception.InvalidBankKey(key=key, reason="empty")
    if not key.startswith("/"):
        key = "/" + key
    if not _KEY_RE.match(key):
        raise exception.InvalidBankKey(key=key, reason="contains forbidden characters")
    if any(part in (".", "..") for part in key.split("/")):
        raise exception.InvalidBankKey(key=key, reason="'.' and '..' are not allowed")
    return key


class Bank:
    def __init__(self, plugin: BankPlugin):
        self._plugin = plugin

    @property
    def plugin(self) -> BankPlugin:
        return self._plugin

    def update_object(self, key, value, context=None):
        if isinstance(value, BinaryParts) and not self._plugin.accepts_parts:
            value = bytes(value)
        return self._plugin.update_object(normalize_key(key), value, context=context)

    def get_object(self, key, context=None):
        return self._plugin.get_object(normalize_key(key), context=context)

    def get_buffer(self, key, context=None):
        """A binary object as a read-only buffer (bytes, or a plugin's zero-copy view of
        it: the file-system bank maps the file); ``BankError`` if it is not binary."""
        read = getattr(self._plugin, "get_buffer", None)
        if callable(read):
            return read(normalize_key(key), context=context)
        value = self._plugin.get_object(normalize_key(key), context=context)
        if not isinstance(value, bytes):
            raise exception.BankError(reason=f"{key} is not a binary object")
        return value

    def list_objects(self, prefix=None, limit=None, marker=None, sort_dir=None, context=None):
        prefix = normalize_prefix(prefix)
        return self._plugin.list_objects(prefix=prefix, limit=limit, marker=marker,
                                         sort_dir=sort_dir, context=context)

    def delete_object(self, key, context=None):
        return self._plugin.delete_object(normalize_key(key), context=context)

    def get_owner_id(self, context=None):
        return self._plugin.get_owner_id(context=context)

    def flush(self) -> None:
        flush = getattr(self._plugin, "flush", None)
        if callable(flush):
            flush()

    def get_sub_section(self, prefix: str, is_writable: bool = True) -> BankSection:
        return BankSection(self, prefix, is_writable)


class BankSection:
    """A prefix of the bank: keys given to it are relative and cannot escape it."""

    def __init__(self, bank: Bank, prefix: str, is_writable: bool = True):
        self._bank = bank
        self._prefix = normalize_key(prefix).rstrip("/")
        self._writable = is_writable

    @property
    def bank(self) -> Bank:
        return self._bank

    @property
    def is_writable(self) -> bool:
        return self._writable

    def _full(self, key: str) -> str:
        rel = normalize_key(key)
        return self._prefix + rel

    def _check_writable(self):
        if not self._writable:
            raise exception.BankError(reason=f"section {self._prefix} is read-only")

    def update_object(self, key, value, context=None):
        self._check_writable()
        return self._bank.update_object(self._full(key), value, context=context)

    def get_buffer(self, key, context=None):
        return self._bank.get_buffer(self._full(key), context=context)

    def get_object(self, key, context=None):
        return self._bank.get_object(self._full(key), context=context)

    def delete_object(self, key, context=None):
        self._check_writable()
        return self._bank.delete_object(self._full(key), context=context)

    def list_objects(self, prefix=None, limit=None, marker=None, sort_dir=None,
                     context=None) -> list[str]:
        full_prefix = self._prefix + normalize_prefix(prefix)
        full_marker = self._full(marker) if marker else None
        keys: Iterable[str] = self._bank.list_objects(full_prefix, limit, full_marker, sort_dir,
                                                      context=context)
        strip = len(self._prefix) + 1
        return [k[strip:] for k in keys]

    def get_sub_section(self, prefix: str, is_writable: bool | None = None) -> BankSection:
        writable = self._writable if is_writable is None else (self._writable and is_writable)
        return BankSection(self._bank, self._full(prefix), writable)
