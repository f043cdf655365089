"""Keys, chunk ids and sealing: the only module that touches key material.

Every bytes object the store writes is *sealed*: ``mode(1) || rest``.

* mode 0 (store not encrypted): ``rest = inner || BLAKE3(aad || inner)[:16]``;
* mode 1 (AES-256-GCM): ``rest = nonce(12) || AES-256-GCM(data_key, nonce, inner, aad)``
  (ciphertext followed by its 16-byte tag).

``inner = comp(1) || body`` where ``comp`` says how ``body`` is compressed (see blob.py).
The ``aad`` names what the object is (and for a chunk, its id), so an object moved to another
place or swapped for another fails to open.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from karbor.services.protection.chunkstore.errors import SealError

KEY_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16
CHECKSUM_LEN = 16
MODE_PLAIN = 0
MODE_AES_GCM = 1

AAD_CHUNK = b"karbor-cs1 chunk:"
AAD_PACK_HEADER = b"karbor-cs1 pack-header"
AAD_INDEX = b"karbor-cs1 index"
AAD_MANIFEST = b"karbor-cs1 manifest:"
AAD_KEYS = b"karbor-cs1 keys:"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost; the default takes ~32 MiB and ~0.1 s, tests may pass a cheaper one."""

    n: int = 2 ** 15
    r: int = 8
    p: int = 1


@dataclass(frozen=True)
class KeySet:
    """The per-store secrets, generated once at creation."""

    id_key: bytes           # BLAKE3 key of chunk ids
    chunker_seed: int       # XORed into the chunker's gear table (1 .. 2**63-1)
    data_key: bytes | None  # AES-256-GCM key; None when the store is not encrypted

    @classmethod
    def generate(cls, encrypted: bool) -> KeySet:
        return cls(id_key=secrets.token_bytes(KEY_LEN),
                   chunker_seed=secrets.randbelow(2 ** 63 - 1) + 1,
                   data_key=secrets.token_bytes(KEY_LEN) if encrypted else None)

    def with_data_key(self, data_key: bytes | None) -> KeySet:
        return KeySet(self.id_key, self.chunker_seed, data_key)


def derive_kek(passphrase: str, salt: bytes, params: ScryptParams) -> bytes:
    kdf = Scrypt(salt=salt, length=KEY_LEN, n=params.n, r=params.r, p=params.p)
    return kdf.derive(passphrase.encode("utf-8"))


def wrap_keys(keys: KeySet, passphrase: str, params: ScryptParams, store_id: str) -> dict:
    """The ``encryption`` member of the store config: KDF parameters and the sealed keys."""
    salt = secrets.token_bytes(16)
    kek = derive_kek(passphrase, salt, params)
    bundle = json.dumps({"data_key": b64(keys.data_key), "id_key": b64(keys.id_key),
                         "chunker_seed": keys.chunker_seed}, sort_keys=True).encode()
    nonce = os.urandom(NONCE_LEN)
    sealed = nonce + AESGCM(kek).encrypt(nonce, bundle, AAD_KEYS + store_id.encode())
    return {"cipher": "aes-256-gcm",
            "kdf": {"algorithm": "scrypt", "salt": b64(salt), "n": params.n, "r": params.r,
                    "p": params.p},
            "keys": b64(sealed)}


def unwrap_keys(encryption: dict, passphrase: str, store_id: str) -> KeySet:
    """The store's keys, or ``SealError`` when the passphrase does not open them."""
    kdf = encryption["kdf"]
    if kdf.get("algorithm") != "scrypt" or encryption.get("cipher") != "aes-256-gcm":
        raise SealError(reason=f"unsupported key envelope {kdf.get('algorithm')}/"
                               f"{encryption.get('cipher')}")
    kek = derive_kek(passphrase, unb64(kdf["salt"]),
                     ScryptParams(int(kdf["n"]), int(kdf["r"]), int(kdf["p"])))
    sealed = unb64(encryption["keys"])
    try:
        bundle = AESGCM(kek).decrypt(sealed[:NONCE_LEN], sealed[NONCE_LEN:],
                                     AAD_KEYS + store_id.encode())
    except InvalidTag:
        raise SealError(reason="key envelope does not open with this passphrase") from None
    data = json.loads(bundle)
    return KeySet(id_key=unb64(data["id_key"]), chunker_seed=int(data["chunker_seed"]),
                  data_key=unb64(data["data_key"]))


class Sealer:
    """Seals and opens objects with the store's data key (or a checksum without one).

    Thread-safe: it holds only the key; every call has its own nonce and context.
    """

    def __init__(self, keys: KeySet):
        self._id_key = keys.id_key
        self._aead = AESGCM(keys.data_key) if keys.data_key is not None else None

    @property
    def encrypted(self) -> bool:
        return self._aead is not None

    def chunk_id(self, data) -> bytes:
        """The 32-byte keyed BLAKE3 of a chunk's plaintext: its name in the store."""
        return blake3.blake3(data, key=self._id_key).digest()

    def seal(self, comp: int, body, aad: bytes) -> bytes:
        """The sealed object."""
        return b"".join(self.seal_parts(comp, body, aad))

    def seal_parts(self, comp: int, body, aad: bytes) -> list:
        """The sealed object as consecutive buffers (``body`` itself among them when not
        encrypted: a blob bound for a pack is not copied)."""
        if self._aead is None:
            h = blake3.blake3(aad)
            h.update(bytes((comp,)))
            h.update(body)
            return [bytes((MODE_PLAIN, comp)), body, h.digest(length=CHECKSUM_LEN)]
        nonce = os.urandom(NONCE_LEN)
        plain = bytearray(1 + len(body))
        plain[0] = comp
        plain[1:] = body
        out = bytearray(1 + NONCE_LEN + len(plain) + TAG_LEN)
        out[0] = MODE_AES_GCM
        out[1:1 + NONCE_LEN] = nonce
        self._aead.encrypt_into(nonce, plain, aad, memoryview(out)[1 + NONCE_LEN:])
        return [out]

    def open(self, obj, aad: bytes) -> tuple[int, memoryview]:
        """``(comp, body)`` of a sealed object; ``SealError`` if it fails its check."""
        view = memoryview(obj)
        if len(view) < 2:
            raise SealError(reason="object too short")
        mode = view[0]
        if self._aead is None:
            if mode != MODE_PLAIN:
                raise SealError(reason=f"sealing mode {mode} in an unencrypted store")
            if len(view) < 2 + CHECKSUM_LEN:
                raise SealError(reason="object too short")
            inner = view[1:len(view) - CHECKSUM_LEN]
            h = blake3.blake3(aad)
            h.update(inner)
            if h.digest(length=CHECKSUM_LEN) != view[len(view) - CHECKSUM_LEN:]:
                raise SealError(reason="checksum mismatch")
        else:
            if mode != MODE_AES_GCM:
                raise SealError(reason=f"sealing mode {mode} in an encrypted store")
            if len(view) < 1 + NONCE_LEN + TAG_LEN + 1:
                raise SealError(reason="object too short")
            try:
                inner = memoryview(self._aead.decrypt(view[1:1 + NONCE_LEN],
                                                      view[1 + NONCE_LEN:], aad))
            except InvalidTag:
                raise SealError(reason="authentication failed (AES-GCM tag mismatch)") from None
            if len(inner) < 1:
                raise SealError(reason="empty object")
        return inner[0], inner[1:]
