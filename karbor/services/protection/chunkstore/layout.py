"""Where each kind of chunk-store object lives, relative to the store's prefix."""

from __future__ import annotations

import re

from karbor.services.protection.chunkstore.errors import InvalidName

CONFIG = "config"
PACKS = "packs/"
INDEX = "index/"
MANIFESTS = "manifests/"
WRITERS = "writers/"
GC_LOCK = "gc/lock"
CONDEMNED = "gc/condemned/"

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-@#:]+(/[A-Za-z0-9_.\-@#:]+)*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def pack_key(pack_id: bytes) -> str:
    h = pack_id.hex()
    return f"{PACKS}{h[:2]}/{h}"


def pack_id_from_key(key: str) -> bytes | None:
    """The pack id of a key listed under ``packs/``; None for anything else."""
    name = key.rsplit("/", 1)[-1]
    if not _HEX64.match(name) or key != pack_key(bytes.fromhex(name)):
        return None
    return bytes.fromhex(name)


def index_key(file_id: str) -> str:
    return INDEX + file_id


def writer_key(writer_id: str) -> str:
    return WRITERS + writer_id


def condemned_key(record_id: str) -> str:
    return CONDEMNED + record_id


def check_name(name: str) -> str:
    """A manifest name: bank-key characters, ``/``-separated, no empty/``.``/``..`` part."""
    if not isinstance(name, str) or not name:
        raise InvalidName(name=name, reason="empty")
    if len(name) > 512:
        raise InvalidName(name=name, reason="longer than 512 characters")
    if not _NAME_RE.match(name):
        raise InvalidName(name=name, reason="allowed are A-Z a-z 0-9 _ . - @ # : and '/' "
                                            "between non-empty parts")
    if any(part in (".", "..") for part in name.split("/")):
        raise InvalidName(name=name, reason="'.' and '..' parts are not allowed")
    return name


def manifest_key(name: str) -> str:
    return MANIFESTS + check_name(name)
