"""Chunk blobs and metadata objects: compress, then seal; open, decompress, check.

``comp`` 0 = the body is the data as is, 1 = the body is one zstd frame (with its content
size). A chunk is stored uncompressed when zstd does not make it smaller.
"""

from __future__ import annotations

import threading

import zstandard

from karbor.services.protection.chunkstore import crypto
from karbor.services.protection.chunkstore.errors import CorruptionError, SealError

COMP_NONE = 0
COMP_ZSTD = 1
MAX_METADATA_SIZE = 1 << 30

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache = getattr(_local, "cctx", None)
    if cache is None:
        cache = _local.cctx = {}
    cctx = cache.get(level)
    if cctx is None:
        cctx = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cctx


def _decompressor() -> zstandard.ZstdDecompressor:
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


def chunk_aad(chunk_id: bytes) -> bytes:
    return crypto.AAD_CHUNK + chunk_id


SAMPLE = 16 * 1024     # four samples of a big chunk predict whether zstd pays off


def _incompressible(data) -> bool:
    """Whether four samples spread over a big chunk barely compress (random or already
    compressed data): then the chunk is stored as is without trying zstd on all of it."""
    n = len(data)
    if n < 16 * SAMPLE:
        return False
    view = memoryview(data)
    step = n // 4
    sample = b"".join(view[i * step:i * step + SAMPLE] for i in range(4))
    return len(_compressor(1).compress(sample)) > len(sample) * 0.97


def encode_chunk(sealer: crypto.Sealer, chunk_id: bytes, data, level: int) -> list:
    """The stored form of a chunk, as consecutive buffers (see ``Sealer.seal_parts``):
    compressed if that helps, then sealed under its id."""
    comp, body = COMP_NONE, data
    if level > 0 and not _incompressible(data):
        packed = _compressor(level).compress(data)
        if len(packed) < len(data):
            comp, body = COMP_ZSTD, packed
    return sealer.seal_parts(comp, body, chunk_aad(chunk_id))


def parts_size(parts) -> int:
    return sum(len(p) for p in parts)


def decode_chunk(sealer: crypto.Sealer, chunk_id: bytes, raw_length: int, stored,
                 view: bool = False):
    """The plaintext of a stored chunk, checked against its id; ``CorruptionError`` if not.
    ``view``: an uncompressed chunk may come back as a view of ``stored`` (no copy; it
    keeps ``stored`` alive)."""
    cid = chunk_id.hex()
    try:
        comp, body = sealer.open(stored, chunk_aad(chunk_id))
    except SealError as e:
        raise CorruptionError(reason=f"chunk {cid}: {e.reason}") from None
    if comp == COMP_NONE:
        data = body if view else bytes(body)
    elif comp == COMP_ZSTD:
        try:
            data = _decompressor().decompress(body, max_output_size=raw_length)
        except zstandard.ZstdError as e:
            raise CorruptionError(reason=f"chunk {cid}: zstd: {e}") from None
    else:
        raise CorruptionError(reason=f"chunk {cid}: unknown compression {comp}")
    if len(data) != raw_length:
        raise CorruptionError(reason=f"chunk {cid}: {len(data)} bytes, expected {raw_length}")
    if sealer.chunk_id(data) != chunk_id:
        raise CorruptionError(reason=f"chunk {cid}: content does not hash to its id")
    return data


def encode_object(sealer: crypto.Sealer, body: bytes, aad: bytes, level: int = 3) -> bytes:
    """A metadata object (index file, manifest): always zstd, then sealed."""
    return sealer.seal(COMP_ZSTD, _compressor(level).compress(body), aad)


def decode_object(sealer: crypto.Sealer, stored, aad: bytes, what: str) -> bytes:
    try:
        comp, body = sealer.open(stored, aad)
    except SealError as e:
        raise CorruptionError(reason=f"{what}: {e.reason}") from None
    if comp == COMP_NONE:
        return bytes(body)
    if comp != COMP_ZSTD:
        raise CorruptionError(reason=f"{what}: unknown compression {comp}")
    try:
        return _decompressor().decompress(body, max_output_size=MAX_METADATA_SIZE)
    except zstandard.ZstdError as e:
        raise CorruptionError(reason=f"{what}: zstd: {e}") from None
