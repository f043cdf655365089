"""Copy a manifest to another store, moving only the chunks the target lacks.

Stores that share chunking (``ChunkStore.create(..., like=source)``) name chunks alike:
the chunks the target lacks are read (authenticated, re-hashed), sealed with the target's
key and packed there; the manifest is then written as is. Otherwise the stream is read
and written again through the target's chunker, which still stores only new chunks.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

from karbor.services.protection.chunkstore import reader
from karbor.services.protection.chunkstore.errors import CorruptionError
from karbor.services.protection.chunkstore.manifest import Manifest


@dataclass
class CopyReport:
    name: str
    mode: str               # "chunks" or "rechunk"
    chunks: int = 0
    copied_chunks: int = 0
    copied_bytes: int = 0


class _IterReader(io.RawIOBase):
    """A read-only file over an iterator of bytes (to re-chunk a stream into another store)."""

    def __init__(self, pieces: Iterator[bytes]):
        self._pieces = pieces
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._buf = memoryview(piece)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def copy_manifest(source, target, name: str, target_name: str | None = None) -> CopyReport:
    m = source.get_manifest(name)
    target_name = target_name or name
    if not source.shares_chunking_with(target):
        with target.session() as s:
            out = s.write_stream(_IterReader(source.read_stream(m)), target_name, m.metadata)
        return CopyReport(target_name, "rechunk", len(out.chunks), out.stats.new_chunks,
                          out.stats.new_bytes)
    report = CopyReport(target_name, "chunks", len(m.chunks))
    with target.session() as s:
        sizes = dict(m.chunks)
        missing = [(cid, sizes[cid]) for cid in dict.fromkeys(c for c, _ in m.chunks)
                   if not s.has(cid)]

        def pieces():
            for i, data in reader.ChunkReader(source).chunks(missing):
                yield missing[i][0], data

        try:
            stats = s.add_chunks(pieces())
        except CorruptionError as e:
            raise CorruptionError(reason=f"copying manifest {name}: {e.reason}") from None
        report.copied_chunks, report.copied_bytes = stats.new_chunks, stats.new_bytes
        s.add_manifest(Manifest(target_name, list(m.chunks), dict(m.metadata), m.created))
    return report
