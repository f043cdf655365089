"""The chunk store: deduplicated, compressed, optionally encrypted bulk data in a bank.

One job per module: ``chunker`` (content-defined cuts), ``crypto`` (keys, ids, sealing),
``blob`` (compress + seal one chunk), ``pack`` (blobs grouped into bank objects), ``index``
(where each chunk is), ``manifest`` (one per protected stream), ``lease`` (writers'
leases, collector lock), ``writer`` / ``reader`` (the pipelines), ``gc`` (collection safe
beside writers), ``copy`` (between stores), ``check`` (whole-store check), ``store`` (API).
Format: doc/chunk-store.md.
"""

from karbor.services.protection.chunkstore.chunker import ChunkerParams
from karbor.services.protection.chunkstore.crypto import ScryptParams
from karbor.services.protection.chunkstore.errors import (
                                                          ChunkStoreError,
                                                          CorruptionError,
                                                          GCBusy,
                                                          LeaseExpired,
                                                          ManifestNotFound,
                                                          PassphraseRequired,
                                                          StoreExists,
                                                          StoreNotFound,
                                                          WrongPassphrase,
)
from karbor.services.protection.chunkstore.manifest import Manifest, WriteStats
from karbor.services.protection.chunkstore.store import ChunkStore, Tuning, VerifyReport

__all__ = ["ChunkStore", "ChunkStoreError", "ChunkerParams", "CorruptionError", "GCBusy",
           "LeaseExpired", "Manifest", "ManifestNotFound", "PassphraseRequired",
           "ScryptParams", "StoreExists", "StoreNotFound", "Tuning", "VerifyReport",
           "WriteStats", "WrongPassphrase"]
