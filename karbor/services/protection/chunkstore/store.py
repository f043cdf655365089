"""The chunk store: a content-addressed, deduplicated, optionally encrypted area of a bank.

    store = ChunkStore.open_or_create(bank, passphrase="...")
    manifest = store.write_stream(fileobj, "checkpoints/<id>/<resource>")
    for piece in store.read_stream("checkpoints/<id>/<resource>"): ...
    store.verify(name); store.delete_manifest(name); store.gc()

The format is specified in doc/chunk-store.md.
"""

from __future__ import annotations

import hmac
import io
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from karbor.common import exception
from karbor.services.protection.chunkstore import bankio, crypto, layout, reader
from karbor.services.protection.chunkstore.chunker import Chunker, ChunkerParams, MiB
from karbor.services.protection.chunkstore.errors import (
    ChunkStoreError,
    CorruptionError,
    ManifestNotFound,
    NotEncrypted,
    PassphraseRequired,
    SealError,
    StoreExists,
    StoreNotFound,
    UnsupportedFormat,
    WrongPassphrase,
)
from karbor.services.protection.chunkstore.index import Index
from karbor.services.protection.chunkstore.manifest import Manifest

FORMAT = "karbor-chunkstore"
VERSION = 1
DEFAULT_PREFIX = "/chunks"


@dataclass
class Tuning:
    """Per-process knobs: none of them changes what is stored, only how fast and in how
    much memory (``pack_size`` and ``compression_level`` override the store's defaults)."""

    workers: int = field(default_factory=lambda: max(2, os.cpu_count() or 2))
    io_workers: int = 3
    queue_depth: int = 0          # chunks in flight; 0 = 2 * workers + 2
    pending_uploads: int = 1      # full packs stored in the background per session (more for S3)
    read_packs: int = 3           # packs held while reading
    index_every: int = 64         # packs per index file during a long write
    lease_seconds: float = 900.0
    lease_grace: float = 60.0     # clock skew allowance when judging others' leases
    pack_size: int | None = None
    compression_level: int | None = None
    put_attempts: int = bankio.ATTEMPTS

    def __post_init__(self):
        if self.queue_depth <= 0:
            self.queue_depth = 2 * self.workers + 2


@dataclass
class VerifyReport:
    name: str
    chunks: int = 0
    unique_chunks: int = 0
    bytes: int = 0
    bad: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad


class ChunkStore:
    """Open with ``create``, ``open`` or ``open_or_create``; ``close()`` (or ``with``) ends
    its thread pools. Thread-safe: any number of threads may read and write at once; keep
    one open store per bank and process (its index is loaded once, then refreshed).

    ``hooks`` (name -> callable, for tests and instrumentation) are called at
    ``pack_stored(session, pack_id)``, ``before_commit(session)`` (index written, manifests
    not yet), ``gc_condemned(record)`` and ``gc_before_sweep(ripe, waiting)``.
    """

    def __init__(self, section, prefix: str, config: dict, keys: crypto.KeySet,
                 tuning: Tuning):
        self.section = section
        self.prefix = prefix
        self.config = config
        self.keys = keys
        self.tuning = tuning
        self.params = ChunkerParams.from_json(config["chunker"])
        self.sealer = crypto.Sealer(keys)
        self.chunker = Chunker(self.params, keys.chunker_seed)
        self.pack_size = int(tuning.pack_size or config["pack_size"])
        level = tuning.compression_level
        self.compression_level = int(config["compression"]["level"] if level is None
                                     else level)
        self.index = Index()
        self.hooks: dict[str, Callable] = {}
        self.cpu_pool = ThreadPoolExecutor(tuning.workers, thread_name_prefix="chunkstore-cpu")
        self.io_pool = ThreadPoolExecutor(tuning.io_workers, thread_name_prefix="chunkstore-io")

    # ------------------------------------------------------------------ opening

    @staticmethod
    def _section(bank, prefix: str):
        return bank.get_sub_section(prefix)

    @classmethod
    def create(cls, bank, *, passphrase: str | None = None, prefix: str = DEFAULT_PREFIX,
               chunker: ChunkerParams | None = None, pack_size: int = 16 * MiB,
               compression_level: int = 2, kdf: crypto.ScryptParams | None = None,
               like: ChunkStore | None = None, tuning: Tuning | None = None) -> ChunkStore:
        """A new, empty store. ``like``: share its chunker and chunk-id key (not its data
        key), so that ``copy`` between the two moves chunks without re-chunking."""
        section = cls._section(bank, prefix)
        try:
            section.get_object(layout.CONFIG)
            raise StoreExists(prefix=prefix)
        except exception.BankObjectNotFound:
            pass
        encrypted = passphrase is not None
        if like is not None:
            params = like.params
            keys = crypto.KeySet(like.keys.id_key, like.keys.chunker_seed,
                                 crypto.KeySet.generate(True).data_key if encrypted else None)
        else:
            params = (chunker or ChunkerParams()).validate()
            keys = crypto.KeySet.generate(encrypted)
        if pack_size < params.max_size:
            raise ValueError("pack_size must be at least the largest chunk")
        store_id = uuid.uuid4().hex
        config = {"format": FORMAT, "version": VERSION, "store_id": store_id,
                  "created": time.time(), "chunker": params.to_json(),
                  "compression": {"algorithm": "zstd", "level": compression_level},
                  "pack_size": pack_size, "encryption": None}
        if encrypted:
            config["encryption"] = crypto.wrap_keys(keys, passphrase,
                                                    kdf or crypto.ScryptParams(), store_id)
        else:
            config["keys"] = {"id_key": crypto.b64(keys.id_key),
                              "chunker_seed": keys.chunker_seed}
        bankio.put(section, layout.CONFIG, config)
        bankio.flush(section)
        time.sleep(0.05)
        if section.get_object(layout.CONFIG).get("store_id") != store_id:
            raise StoreExists(prefix=prefix)  # lost a race with another creator
        return cls(section, prefix, config, keys, tuning or Tuning())

    @classmethod
    def open(cls, bank, *, passphrase: str | None = None, prefix: str = DEFAULT_PREFIX,
             tuning: Tuning | None = None) -> ChunkStore:
        section = cls._section(bank, prefix)
        try:
            config = section.get_object(layout.CONFIG)
        except exception.BankObjectNotFound:
            raise StoreNotFound(prefix=prefix) from None
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise UnsupportedFormat(prefix=prefix, reason="the config is not a chunk store's")
        if config.get("version") != VERSION:
            raise UnsupportedFormat(prefix=prefix,
                                    reason=f"format version {config.get('version')} is not "
                                           f"{VERSION}")
        enc = config.get("encryption")
        if enc:
            if passphrase is None:
                raise PassphraseRequired(prefix=prefix)
            try:
                keys = crypto.unwrap_keys(enc, passphrase, config["store_id"])
            except SealError:
                raise WrongPassphrase(prefix=prefix) from None
        else:
            if passphrase is not None:
                raise NotEncrypted(prefix=prefix)
            keys = crypto.KeySet(crypto.unb64(config["keys"]["id_key"]),
                                 int(config["keys"]["chunker_seed"]), None)
        return cls(section, prefix, config, keys, tuning or Tuning())

    @classmethod
    def open_or_create(cls, bank, *, passphrase: str | None = None,
                       prefix: str = DEFAULT_PREFIX, **create_args) -> ChunkStore:
        try:
            return cls.open(bank, passphrase=passphrase, prefix=prefix,
                            tuning=create_args.get("tuning"))
        except StoreNotFound:
            pass
        try:
            return cls.create(bank, passphrase=passphrase, prefix=prefix, **create_args)
        except StoreExists:
            return cls.open(bank, passphrase=passphrase, prefix=prefix,
                            tuning=create_args.get("tuning"))

    def change_passphrase(self, new_passphrase: str,
                          kdf: crypto.ScryptParams | None = None) -> None:
        if not self.encrypted:
            raise NotEncrypted(prefix=self.prefix)
        config = dict(self.config)
        config["encryption"] = crypto.wrap_keys(self.keys, new_passphrase,
                                                kdf or crypto.ScryptParams(),
                                                config["store_id"])
        self.put(layout.CONFIG, config)
        self.bank_flush()
        self.config = config

    def close(self) -> None:
        self.cpu_pool.shutdown(wait=True, cancel_futures=True)
        self.io_pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ChunkStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    @property
    def encrypted(self) -> bool:
        return self.sealer.encrypted

    @property
    def store_id(self) -> str:
        return self.config["store_id"]

    def call_hook(self, name: str, **kwargs) -> None:
        hook = self.hooks.get(name)
        if hook is not None:
            hook(**kwargs)

    def put(self, key: str, data) -> None:
        """Store an object, retrying transient failures (see bankio)."""
        bankio.put(self.section, key, data, self.tuning.put_attempts)

    def bank_flush(self) -> None:
        bankio.flush(self.section)

    def fetch_pack(self, pack_id: bytes) -> bytes:
        return reader.fetch(self, pack_id)

    def refresh_index(self) -> None:
        self.index.refresh(self.section, self.sealer, self.io_pool.map)

    # ------------------------------------------------------------------ writing

    def session(self):
        """A write session (see writer.WriteSession): several streams, one commit."""
        from karbor.services.protection.chunkstore.writer import WriteSession
        return WriteSession(self)

    def write_stream(self, fileobj, name: str, metadata: dict | None = None) -> Manifest:
        """Store everything ``fileobj`` yields (``readinto`` or ``read``) as manifest
        ``name`` (replacing one of that name). Returns it, with ``stats`` of what was new."""
        with self.session() as s:
            return s.write_stream(fileobj, name, metadata)

    def write_bytes(self, data: bytes, name: str, metadata: dict | None = None) -> Manifest:
        return self.write_stream(io.BytesIO(data), name, metadata)

    # ------------------------------------------------------------------ manifests

    def get_manifest(self, name: str) -> Manifest:
        try:
            data = self.section.get_object(layout.manifest_key(name))
        except exception.BankObjectNotFound:
            raise ManifestNotFound(name=name) from None
        if not isinstance(data, bytes):
            raise CorruptionError(reason=f"manifest {name} is not a bytes object")
        return Manifest.decode(self.sealer, name, data)

    def list_manifests(self, prefix: str = "") -> list[str]:
        keys = self.section.list_objects(layout.MANIFESTS + prefix)
        return [k[len(layout.MANIFESTS):] for k in keys]

    def delete_manifest(self, name: str) -> None:
        """Forget a manifest; its chunks go at the next ``gc()`` unless others use them."""
        self.section.delete_object(layout.manifest_key(name))

    def _manifest(self, m: Manifest | str) -> Manifest:
        return m if isinstance(m, Manifest) else self.get_manifest(m)

    # ------------------------------------------------------------------ reading

    def read_stream(self, manifest: Manifest | str, offset: int = 0,
                    length: int | None = None) -> Iterator[bytes]:
        """The stream's bytes (from ``offset``, ``length`` of them), piece by piece.

        Every piece was authenticated and re-hashed; a chunk that fails raises
        ``CorruptionError`` naming it, before any of its bytes are handed out.
        """
        m = self._manifest(manifest)
        end = m.size if length is None else min(m.size, offset + length)
        plan, first, pos = [], None, 0
        for i, (cid, n) in enumerate(m.chunks):
            if pos + n > offset and pos < end:
                if first is None:
                    first = (i, pos)
                plan.append((cid, n))
            pos += n
        if not plan:
            return
        start = first[1]
        try:
            for _, data in reader.ChunkReader(self).chunks(plan):
                lo = max(offset - start, 0)
                hi = min(end - start, len(data))
                start += len(data)
                yield data if (lo, hi) == (0, len(data)) else data[lo:hi]
        except CorruptionError as e:
            raise CorruptionError(reason=f"manifest {m.name}: {e.reason}") from None

    def read_into(self, manifest: Manifest | str, fileobj) -> int:
        total = 0
        for piece in self.read_stream(manifest):
            fileobj.write(piece)
            total += len(piece)
        return total

    def verify(self, manifest: Manifest | str) -> VerifyReport:
        """Re-read and re-hash every chunk of a manifest; report the bad ones (all of them)."""
        try:
            m = self._manifest(manifest)
        except CorruptionError as e:
            name = manifest if isinstance(manifest, str) else manifest.name
            return VerifyReport(name, bad=[{"chunk": None, "reason": e.reason}])
        report = VerifyReport(m.name, chunks=len(m.chunks), bytes=m.size)
        offsets: dict[bytes, list[int]] = {}
        pos = 0
        for cid, n in m.chunks:
            offsets.setdefault(cid, []).append(pos)
            pos += n
        sizes = dict(m.chunks)
        plan = [(cid, sizes[cid]) for cid in offsets]
        report.unique_chunks = len(plan)

        def bad(i, cid, err):
            report.bad.append({"chunk": cid.hex(), "offsets": offsets[cid], "reason": err.reason})

        for _ in reader.ChunkReader(self).chunks(plan, on_error=bad):
            pass
        return report

    # ------------------------------------------------------------------ maintenance

    def gc(self, repack_threshold: float = 0.5):
        from karbor.services.protection.chunkstore.gc import GarbageCollector
        return GarbageCollector(self, repack_threshold=repack_threshold).run()

    def check(self, read_data: bool = True):
        from karbor.services.protection.chunkstore.check import check
        return check(self, read_data=read_data)

    def copy_to(self, target: ChunkStore, name: str, target_name: str | None = None):
        from karbor.services.protection.chunkstore.copy import copy_manifest
        return copy_manifest(self, target, name, target_name)

    def shares_chunking_with(self, other: ChunkStore) -> bool:
        """Same chunker and chunk-id key: chunks can move between the stores as they are."""
        return (self.params == other.params
                and self.keys.chunker_seed == other.keys.chunker_seed
                and hmac.compare_digest(self.keys.id_key, other.keys.id_key))


__all__ = ["ChunkStore", "ChunkStoreError", "Tuning", "VerifyReport"]
