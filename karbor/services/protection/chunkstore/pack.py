"""Pack objects: many chunk blobs in one bank object, with a sealed header listing them.

``pack = blob_0 || ... || blob_n-1 || sealed_header || u32le(len(sealed_header))``; the
header plaintext is ``"KCSP" || version u8 (1) || salt(16) || u32le(n) ||
n x (chunk_id(32) || u32le(stored_length) || u32le(raw_length))``; blob k starts where
blob k-1 ends, blob 0 at offset 0. The random salt makes every pack's bytes, hence its id
(BLAKE3 of the whole pack), unique even when two writers pack the same chunks.
"""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

import blake3

from karbor.services.protection.bank_plugin import BinaryParts
from karbor.services.protection.chunkstore import crypto
from karbor.services.protection.chunkstore.blob import COMP_NONE, parts_size
from karbor.services.protection.chunkstore.errors import CorruptionError, SealError

MAGIC = b"KCSP"
VERSION = 1
_HEAD = struct.Struct("<4sB16sI")
_ENTRY = struct.Struct("<32sII")
_TRAILER = struct.Struct("<I")


class BlobEntry(NamedTuple):
    chunk_id: bytes
    offset: int
    length: int       # stored (sealed) length in the pack
    raw_length: int   # plaintext chunk length


class PackBuilder:
    """Collects sealed blobs (each a list of buffers) until the pack is big enough, then
    hands them over."""

    def __init__(self):
        self.blobs: list[list] = []
        self.entries: list[tuple[bytes, int]] = []
        self.size = 0

    def add(self, chunk_id: bytes, parts: list, raw_length: int) -> None:
        self.blobs.append(parts)
        self.entries.append((chunk_id, raw_length))
        self.size += parts_size(parts)

    def __len__(self) -> int:
        return len(self.blobs)

    def take(self) -> tuple[list[list], list[tuple[bytes, int]]]:
        blobs, entries = self.blobs, self.entries
        self.blobs, self.entries, self.size = [], [], 0
        return blobs, entries


def build(sealer: crypto.Sealer, blobs: list[list],
          entries: list[tuple[bytes, int]]) -> tuple[bytes, BinaryParts, list[BlobEntry]]:
    """``(pack_id, pack, entries)`` for the blobs (each a list of buffers), in order; the
    pack is the blobs' buffers followed by the header, not copied into one."""
    head = [_HEAD.pack(MAGIC, VERSION, os.urandom(16), len(blobs))]
    out: list[BlobEntry] = []
    parts: list = []
    hasher = blake3.blake3()
    offset = 0
    for blob, (cid, raw_length) in zip(blobs, entries, strict=True):
        length = parts_size(blob)
        head.append(_ENTRY.pack(cid, length, raw_length))
        out.append(BlobEntry(cid, offset, length, raw_length))
        offset += length
        parts.extend(blob)
    sealed = sealer.seal(COMP_NONE, b"".join(head), crypto.AAD_PACK_HEADER)
    parts += [sealed, _TRAILER.pack(len(sealed))]
    for part in parts:
        hasher.update(part)
    return hasher.digest(), BinaryParts(parts), out


def pack_id_of(data) -> bytes:
    return blake3.blake3(data).digest()


def parse(sealer: crypto.Sealer, data, what: str = "pack") -> list[BlobEntry]:
    """The entries a pack's own header lists (to check an index or rebuild one)."""
    view = memoryview(data)
    if len(view) < _TRAILER.size:
        raise CorruptionError(reason=f"{what}: too short")
    (hlen,) = _TRAILER.unpack(view[len(view) - _TRAILER.size:])
    start = len(view) - _TRAILER.size - hlen
    if start < 0:
        raise CorruptionError(reason=f"{what}: header length {hlen} beyond the pack")
    try:
        _, head = sealer.open(view[start:len(view) - _TRAILER.size], crypto.AAD_PACK_HEADER)
    except SealError as e:
        raise CorruptionError(reason=f"{what}: header: {e.reason}") from None
    if len(head) < _HEAD.size:
        raise CorruptionError(reason=f"{what}: header too short")
    magic, version, _salt, count = _HEAD.unpack(head[:_HEAD.size])
    if magic != MAGIC or version != VERSION:
        raise CorruptionError(reason=f"{what}: not a version-{VERSION} pack header")
    if len(head) != _HEAD.size + count * _ENTRY.size:
        raise CorruptionError(reason=f"{what}: header lists {count} blobs but has "
                                     f"{len(head)} bytes")
    entries = []
    offset = 0
    for i in range(count):
        cid, length, raw_length = _ENTRY.unpack_from(head, _HEAD.size + i * _ENTRY.size)
        entries.append(BlobEntry(cid, offset, length, raw_length))
        offset += length
    if offset != start:
        raise CorruptionError(reason=f"{what}: blobs end at {offset}, header starts at {start}")
    return entries
