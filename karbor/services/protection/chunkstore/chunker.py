"""Content-defined chunking: FastCDC 2020 (pyfastcdc, which cuts with the GIL released).

Boundaries depend only on the bytes and on the store's parameters and secret seed, so an
unchanged region of a source yields the same chunks in every checkpoint, wherever it moved.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from pyfastcdc import FastCDC

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class ChunkerParams:
    """Sizes in bytes; pyfastcdc bounds: min 64..1 MiB, avg 256..4 MiB, max 1 KiB..16 MiB."""

    min_size: int = 256 * KiB
    avg_size: int = 1 * MiB
    max_size: int = 4 * MiB
    normalization: int = 1   # FastCDC NC level; 2 resyncs slower after an edit (measured)

    def validate(self) -> ChunkerParams:
        if self.avg_size & (self.avg_size - 1):
            raise ValueError(f"chunk avg_size {self.avg_size} is not a power of two")
        if not 64 <= self.min_size <= self.avg_size <= self.max_size:
            raise ValueError("chunk sizes must satisfy 64 <= min <= avg <= max")
        if not (256 <= self.avg_size <= 4 * MiB and self.min_size <= MiB
                and 1 * KiB <= self.max_size <= 16 * MiB):
            raise ValueError("chunk sizes out of range (avg 256 B..4 MiB, min <= 1 MiB, "
                             "max 1 KiB..16 MiB)")
        if self.normalization not in (0, 1, 2, 3):
            raise ValueError("normalization must be 0..3")
        return self

    def to_json(self) -> dict:
        return {"algorithm": "fastcdc-2020", **asdict(self)}

    @classmethod
    def from_json(cls, data: dict) -> ChunkerParams:
        if data.get("algorithm") != "fastcdc-2020":
            raise ValueError(f"unknown chunker {data.get('algorithm')!r}")
        return cls(int(data["min_size"]), int(data["avg_size"]), int(data["max_size"]),
                   int(data["normalization"])).validate()


BLOCK_CHUNKS = 4   # a block read holds this many largest chunks


def _unexported(buf: bytearray) -> bool:
    """Whether no view of ``buf`` is alive: a bytearray with exported views refuses to
    change size (shrinking by one byte and growing back stays within its allocation)."""
    try:
        del buf[-1:]
    except BufferError:
        return False
    buf.append(0)
    return True


class BufferPool:
    """Read buffers of one writer, reused once every chunk view of them is gone: a fresh
    16 MiB buffer costs a memset and page faults per block read, which showed as a
    good part of a backup's CPU time."""

    def __init__(self, keep: int = 6):
        self._bufs: list[bytearray] = []
        self._keep = keep

    def get(self, size: int) -> bytearray:
        for buf in self._bufs:
            if len(buf) == size and _unexported(buf):
                return buf
        buf = bytearray(size)
        if len(self._bufs) < self._keep:
            self._bufs.append(buf)
        return buf

    def clear(self) -> None:
        self._bufs = []


class Chunker:
    """Cuts streams into chunks. Thread-safe (one FastCDC per thread)."""

    def __init__(self, params: ChunkerParams, seed: int):
        self.params = params.validate()
        self._seed = seed
        self._local = threading.local()

    def _cdc(self) -> FastCDC:
        cdc = getattr(self._local, "cdc", None)
        if cdc is None:
            p = self.params
            cdc = self._local.cdc = FastCDC(p.avg_size, min_size=p.min_size,
                                            max_size=p.max_size,
                                            normalized_chunking=p.normalization,
                                            seed=self._seed)
        return cdc

    def cut(self, data) -> list[memoryview]:
        """The chunks of a whole stream held in memory, as views of it."""
        view = memoryview(data)
        if len(view) <= self.params.min_size:
            return [view] if len(view) else []
        return [c.data for c in self._cdc().cut_buf(view)]

    def chunks(self, fileobj, size_hint: int | None = None,
               block_size: int | None = None,
               buffers: BufferPool | None = None) -> Iterator[memoryview]:
        """Chunks of a stream (``readinto`` or ``read``), as views that stay valid (each
        block read is a new buffer, never reused), so they can be hashed and compressed on
        other threads without a copy.

        The stream is read in blocks of ``block_size`` (default 4 ``max_size``; of
        ``size_hint + 1`` when that is
        smaller: a file of known size is read in one block); a chunk never ends at a block
        boundary unless the stream does, so the cuts are exactly FastCDC's over the whole
        stream. Memory: the blocks the caller still holds chunks of, plus one. Blocks come
        from ``buffers`` when given (reused once no chunk of theirs is held).
        """
        cdc = self._cdc()
        max_size = self.params.max_size
        block_size = max(block_size or BLOCK_CHUNKS * max_size, 2 * max_size)
        if size_hint is not None and size_hint >= 0:
            block_size = min(block_size, size_hint + 1)
        readinto = getattr(fileobj, "readinto", None)
        carry = memoryview(b"")
        eof = False
        while not eof:
            cap = max(block_size, len(carry) + max_size) if len(carry) else block_size
            buf = buffers.get(cap) if buffers is not None else bytearray(cap)
            view = memoryview(buf)
            filled = len(carry)
            view[:filled] = carry
            carry = memoryview(b"")
            while filled < cap:
                if readinto is not None:
                    n = readinto(view[filled:])
                else:
                    data = fileobj.read(cap - filled)
                    n = len(data)
                    view[filled:filled + n] = data
                if not n:
                    eof = True
                    break
                filled += n
            if not filled:
                return
            data = view[:filled]
            for chunk in cdc.cut_buf(data):
                if not eof and filled - chunk.offset < max_size:
                    # the cut may depend on bytes not read yet: cut again with them
                    carry = data[chunk.offset:]
                    break
                yield chunk.data
            del data, view, buf
