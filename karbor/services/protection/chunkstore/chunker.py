"""Content-defined chunking: FastCDC 2020 (pyfastcdc, which cuts with the GIL released).

Boundaries depend only on the bytes and on the store's parameters and secret seed, so an
unchanged region of a source yields the same chunks in every checkpoint, wherever it moved.
"""

from __future__ import annotations

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


class Chunker:
    def __init__(self, params: ChunkerParams, seed: int):
        self.params = params.validate()
        self._seed = seed

    def chunks(self, fileobj) -> Iterator[memoryview]:
        """Chunks of a stream (``readinto`` or ``read``); each view is valid until the next.

        Memory: one buffer of about twice ``max_size``.
        """
        p = self.params
        cdc = FastCDC(p.avg_size, min_size=p.min_size, max_size=p.max_size,
                      normalized_chunking=p.normalization, seed=self._seed)
        for chunk in cdc.cut_stream(fileobj):
            yield chunk.data
