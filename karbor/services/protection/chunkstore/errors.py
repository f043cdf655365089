"""What the chunk store raises; every message names the store object at fault."""

from __future__ import annotations

from karbor.common import exception


class ChunkStoreError(exception.KarborException):
    message = "Chunk store error: %(reason)s"

    @property
    def reason(self) -> str:
        """The message without its class prefix (to wrap it into a wider one)."""
        return self.kwargs.get("reason", self.msg)


class StoreNotFound(ChunkStoreError):
    message = "No chunk store at %(prefix)s (no config object)."


class StoreExists(ChunkStoreError):
    message = "A chunk store already exists at %(prefix)s."


class UnsupportedFormat(ChunkStoreError):
    message = "Chunk store at %(prefix)s: %(reason)s"


class WrongPassphrase(ChunkStoreError):
    code = 403
    message = "Wrong passphrase for the encrypted chunk store at %(prefix)s."


class PassphraseRequired(ChunkStoreError):
    code = 403
    message = "The chunk store at %(prefix)s is encrypted: a passphrase is required."


class NotEncrypted(ChunkStoreError):
    message = ("The chunk store at %(prefix)s is not encrypted; refusing a passphrase "
               "that would protect nothing.")


class ManifestNotFound(ChunkStoreError):
    code = 404
    message = "No manifest %(name)s in the chunk store."


class InvalidName(ChunkStoreError):
    code = 400
    message = "Invalid manifest name %(name)r: %(reason)s"


class CorruptionError(ChunkStoreError):
    """Stored data failed its integrity check; nothing it covers is ever returned."""

    message = "Corrupt chunk store data: %(reason)s"


class SealError(ChunkStoreError):
    """A sealed object failed authentication (AES-GCM tag or checksum)."""

    message = "%(reason)s"


class LeaseExpired(ChunkStoreError):
    message = ("Writer %(writer_id)s lost its lease (expired at %(expires).0f); the manifest "
               "was not written because a garbage collection may have removed chunks it "
               "reuses. Retry the write.")


class GCBusy(ChunkStoreError):
    code = 409
    message = "Another garbage collection holds the chunk store lock until %(expires).0f."


class IncompatibleStores(ChunkStoreError):
    message = "%(reason)s"
