"""The one chunk store per bank that every bulk-data plugin of a provider shares.

Plugins of one provider (directory, database, image) write into the same chunk store of the
bank, so data one of them stored dedups against the others and a single GC sees every
manifest. Its settings are the provider file's ``[chunk_store]`` section.
"""

from __future__ import annotations

import threading

from oslo_config import cfg

from karbor.common import exception
from karbor.services.protection.chunkstore.errors import ChunkStoreError, GCBusy
from karbor.services.protection.chunkstore.store import ChunkStore, Tuning

chunk_store_opts = [
    cfg.StrOpt("passphrase", secret=True, default=None,
               help="Passphrase of the bank's chunk store (encrypts it when it is "
                    "created; needed to open an encrypted one)."),
    cfg.StrOpt("chunk_prefix", default="/chunks",
               help="Where in the bank the chunk store lives."),
    cfg.IntOpt("compression_level", min=0, max=19, default=None,
               help="zstd level this provider's plugins write with (0: no compression). "
                    "Default: the store's own (2 for a store created now: as small as "
                    "level 3 on typical data, and a third faster)."),
]

_stores: dict[int, tuple[object, ChunkStore]] = {}
_stores_lock = threading.Lock()


def register_opts(config) -> None:
    if config is None:
        return
    try:
        config.register_opts(chunk_store_opts, group="chunk_store")
    except cfg.DuplicateOptError:
        pass


def store_for(config, bank, like: ChunkStore | None = None) -> ChunkStore:
    """The chunk store of ``bank``, opened (or created) once per bank object and process.

    ``like`` makes a new store share the key material of another (a copy bank), so chunks
    copy between them without re-encryption."""
    with _stores_lock:
        held = _stores.get(id(bank))
        if held is not None and held[0] is bank:
            return held[1]
        opts = None
        if config is not None:
            register_opts(config)
            opts = config.chunk_store
        passphrase = opts.passphrase if opts is not None else None
        prefix = opts.chunk_prefix if opts is not None else "/chunks"
        level = opts.compression_level if opts is not None else None
        extra = {"like": like} if like is not None else {}
        store = ChunkStore.open_or_create(bank, passphrase=passphrase, prefix=prefix,
                                          tuning=Tuning(compression_level=level), **extra)
        _stores[id(bank)] = (bank, store)
        return store


def collect(store: ChunkStore, log) -> None:
    """Reclaim unreferenced chunks now, or leave it to the next collection when a writer
    holds the store (a protect running beside this delete loses nothing either way).

    The checkpoint's own manifests are gone by now, so the delete has done its part even
    when the collector refuses (a damaged store): that is logged, and nothing is freed."""
    try:
        store.gc()
    except GCBusy:
        log.info("chunk store busy; its space is reclaimed by the next collection")
    except ChunkStoreError as e:
        log.error("chunk store: space not reclaimed: %s", e)


def message(exc: Exception) -> str:
    """A reason fit for a checkpoint or restore record."""
    if isinstance(exc, exception.KarborException):
        return exc.msg
    if isinstance(exc, ChunkStoreError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
