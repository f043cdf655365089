"""Manifests: one per protected object or stream, the ordered chunks that rebuild it.

Stored at ``manifests/<name>`` as a sealed, zstd-compressed UTF-8 JSON object (aad
``karbor-cs1 manifest:<name>``, so a manifest cannot be passed off under another name)::

    {"version": 1, "name": "<name>", "created": <epoch seconds>, "size": <bytes>,
     "metadata": {...}, "chunks": [["<64 hex chunk id>", <length>], ...]}
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from karbor.services.protection.chunkstore import blob, crypto
from karbor.services.protection.chunkstore.errors import CorruptionError

VERSION = 1


@dataclass
class WriteStats:
    """What one write added: ``new_*`` counts only chunks the store did not have."""

    bytes_in: int = 0
    chunks: int = 0
    new_chunks: int = 0
    new_bytes: int = 0
    stored_bytes: int = 0

    def add(self, other: WriteStats) -> None:
        for name in ("bytes_in", "chunks", "new_chunks", "new_bytes", "stored_bytes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Manifest:
    name: str
    chunks: list[tuple[bytes, int]]
    metadata: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    stats: WriteStats | None = field(default=None, compare=False)

    @property
    def size(self) -> int:
        return sum(n for _, n in self.chunks)

    def chunk_ids(self) -> set[bytes]:
        return {cid for cid, _ in self.chunks}

    def encode(self, sealer: crypto.Sealer) -> bytes:
        body = json.dumps({"version": VERSION, "name": self.name, "created": self.created,
                           "size": self.size, "metadata": self.metadata,
                           "chunks": [[cid.hex(), n] for cid, n in self.chunks]},
                          separators=(",", ":"), sort_keys=True).encode("utf-8")
        return blob.encode_object(sealer, body, aad(self.name))

    @classmethod
    def decode(cls, sealer: crypto.Sealer, name: str, data) -> Manifest:
        what = f"manifest {name}"
        body = blob.decode_object(sealer, data, aad(name), what)
        try:
            doc = json.loads(body)
            if doc["version"] != VERSION:
                raise CorruptionError(reason=f"{what}: unsupported version {doc['version']}")
            chunks = [(bytes.fromhex(h), int(n)) for h, n in doc["chunks"]]
            m = cls(name=doc["name"], chunks=chunks, metadata=doc["metadata"],
                    created=float(doc["created"]))
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptionError(reason=f"{what}: malformed ({e})") from None
        if m.name != name or m.size != doc["size"]:
            raise CorruptionError(reason=f"{what}: name or size does not match")
        return m


def aad(name: str) -> bytes:
    return crypto.AAD_MANIFEST + name.encode("utf-8")
