"""Where each chunk is: index files in the bank, and their union in memory.

An index file lists whole packs: body ``"KCSI" || version u8 (1) || u32le(pack_count) ||
pack_count x (pack_id(32) || u32le(n) || n x (chunk_id(32) || u32le(offset) ||
u32le(stored_length) || u32le(raw_length)))``, zstd-compressed and sealed (aad
``karbor-cs1 index``); its key is ``index/<hex BLAKE3 of the stored object>``. Index files
are immutable: garbage collection replaces them (new file first, old ones deleted after).
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Iterable
from typing import NamedTuple

import blake3

from karbor.common import exception
from karbor.services.protection.chunkstore import blob, crypto, layout
from karbor.services.protection.chunkstore.errors import CorruptionError
from karbor.services.protection.chunkstore.pack import BlobEntry

LOG = logging.getLogger(__name__)

MAGIC = b"KCSI"
VERSION = 1
_HEAD = struct.Struct("<4sBI")
_PACK = struct.Struct("<32sI")
_ENTRY = struct.Struct("<32sIII")

PackEntries = tuple[bytes, list[BlobEntry]]


class Location(NamedTuple):
    pack_id: bytes
    offset: int
    length: int
    raw_length: int


def encode(sealer: crypto.Sealer, packs: Iterable[PackEntries]) -> tuple[str, bytes]:
    """``(file_id, stored_bytes)`` of an index file listing ``packs``."""
    packs = list(packs)
    parts = [_HEAD.pack(MAGIC, VERSION, len(packs))]
    for pack_id, entries in packs:
        parts.append(_PACK.pack(pack_id, len(entries)))
        parts.extend(_ENTRY.pack(e.chunk_id, e.offset, e.length, e.raw_length)
                     for e in entries)
    data = blob.encode_object(sealer, b"".join(parts), crypto.AAD_INDEX)
    return blake3.blake3(data).hexdigest(), data


def decode(sealer: crypto.Sealer, file_id: str, data) -> list[PackEntries]:
    what = f"index file {file_id}"
    if blake3.blake3(data).hexdigest() != file_id:
        raise CorruptionError(reason=f"{what}: content does not hash to its name")
    body = blob.decode_object(sealer, data, crypto.AAD_INDEX, what)
    try:
        magic, version, count = _HEAD.unpack_from(body, 0)
        if magic != MAGIC or version != VERSION:
            raise CorruptionError(reason=f"{what}: not a version-{VERSION} index")
        pos = _HEAD.size
        packs = []
        for _ in range(count):
            pack_id, n = _PACK.unpack_from(body, pos)
            pos += _PACK.size
            entries = [BlobEntry(*_ENTRY.unpack_from(body, pos + i * _ENTRY.size))
                       for i in range(n)]
            pos += n * _ENTRY.size
            packs.append((pack_id, entries))
    except struct.error:
        raise CorruptionError(reason=f"{what}: truncated") from None
    if pos != len(body):
        raise CorruptionError(reason=f"{what}: {len(body) - pos} trailing bytes")
    return packs


class Index:
    """The union of the index files: chunk id -> locations, pack id -> entries.

    Lookups take no lock (dict reads are atomic); changes do.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self.files: dict[str, tuple[bytes, ...]] = {}
        self.packs: dict[bytes, list[BlobEntry]] = {}
        self._pack_files: dict[bytes, set[str]] = {}
        self._chunks: dict[bytes, Location] = {}
        self._dups: dict[bytes, list[Location]] = {}
        self.bad_files: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._chunks)

    def __contains__(self, chunk_id: bytes) -> bool:
        return chunk_id in self._chunks

    def chunk_ids(self):
        return self._chunks.keys()

    def lookup(self, chunk_id: bytes, exclude=frozenset()) -> Location | None:
        """The first location of a chunk not in a pack of ``exclude``."""
        loc = self._chunks.get(chunk_id)
        if loc is None or loc.pack_id not in exclude:
            return loc
        for alt in list(self._dups.get(chunk_id, ())):
            if alt.pack_id not in exclude:
                return alt
        return None

    def locations(self, chunk_id: bytes) -> list[Location]:
        loc = self._chunks.get(chunk_id)
        return [] if loc is None else [loc, *self._dups.get(chunk_id, ())]

    def files_of(self, pack_id: bytes) -> set[str]:
        return set(self._pack_files.get(pack_id, ()))

    def add_file(self, file_id: str, packs: list[PackEntries]) -> None:
        with self._lock:
            if file_id in self.files:
                return
            self.files[file_id] = tuple(p for p, _ in packs)
            for pack_id, entries in packs:
                owners = self._pack_files.setdefault(pack_id, set())
                owners.add(file_id)
                if len(owners) > 1:
                    continue
                self.packs[pack_id] = entries
                for e in entries:
                    loc = Location(pack_id, e.offset, e.length, e.raw_length)
                    if e.chunk_id in self._chunks:
                        self._dups.setdefault(e.chunk_id, []).append(loc)
                    else:
                        self._chunks[e.chunk_id] = loc

    def remove_file(self, file_id: str) -> None:
        with self._lock:
            for pack_id in self.files.pop(file_id, ()):
                owners = self._pack_files.get(pack_id)
                if owners is None:
                    continue
                owners.discard(file_id)
                if owners:
                    continue
                del self._pack_files[pack_id]
                for e in self.packs.pop(pack_id, ()):
                    self._forget(e.chunk_id, pack_id)

    def _forget(self, chunk_id: bytes, pack_id: bytes) -> None:
        dups = self._dups.get(chunk_id)
        if self._chunks.get(chunk_id, Location(b"", 0, 0, 0)).pack_id == pack_id:
            if dups:
                self._chunks[chunk_id] = dups.pop(0)
            else:
                self._chunks.pop(chunk_id, None)
        elif dups:
            self._dups[chunk_id] = [d for d in dups if d.pack_id != pack_id]
        if chunk_id in self._dups and not self._dups[chunk_id]:
            del self._dups[chunk_id]

    def refresh(self, section, sealer: crypto.Sealer, mapper=map) -> None:
        """Bring the union up to date with the index files now in the bank.

        An index file that cannot be read is left out and named in ``bad_files`` (garbage
        collection refuses to run while there is one: its packs would look unreferenced).
        """
        with self._refresh_lock:
            self._refresh(section, sealer, mapper)

    def _refresh(self, section, sealer, mapper) -> None:
        # Only files known before the listing can have left the bank: one added meanwhile
        # (by a writer of this process) was written to the bank after the listing.
        known = set(self.files)
        listed = {k[len(layout.INDEX):] for k in section.list_objects(layout.INDEX)}
        for gone in known - listed:
            self.remove_file(gone)
        new = sorted(listed - set(self.files))

        def load(file_id):
            try:
                data = section.get_object(layout.index_key(file_id))
                return file_id, decode(sealer, file_id, data), None
            except exception.BankObjectNotFound:
                return file_id, None, None  # replaced by a collection meanwhile
            except CorruptionError as e:
                return file_id, None, e.msg

        for file_id, packs, error in mapper(load, new):
            if error is not None:
                LOG.error("chunk store: %s", error)
                self.bad_files[file_id] = error
            elif packs is not None:
                self.bad_files.pop(file_id, None)
                self.add_file(file_id, packs)
        for file_id in list(self.bad_files):
            if file_id not in listed:
                del self.bad_files[file_id]
