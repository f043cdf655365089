"""A full bank is reported as full: ENOSPC from a pack, index or lease write surfaces as
"bank ... is full: no space left on device", never as "write session closed with
uncommitted data" nor as a retried raw OSError naming a temporary file."""

from __future__ import annotations

import errno
import io
import os

import pytest

from karbor.common import exception
from karbor.services.protection.bank_plugin import Bank
from karbor.services.protection.bank_plugins.file_system import FileSystemBankPlugin
from karbor.services.protection.chunkstore import ChunkerParams, ChunkStore, ScryptParams, Tuning

KiB = 1024
SMALL = ChunkerParams(min_size=4 * KiB, avg_size=16 * KiB, max_size=64 * KiB)


class FillingBank(FileSystemBankPlugin):
    """A file-system bank whose device runs full once ``full`` is set: its writes fail
    the way the kernel's do (an OSError with ENOSPC naming the temporary file)."""

    def __init__(self, root: str):
        super().__init__(root=root)
        self.full = False
        self.writes = 0

    def update_object(self, key, value, context=None):
        self.writes += 1
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                          os.path.join(self.root, ".tmp-x"))
        return super().update_object(key, value, context)


@pytest.fixture
def filling(tmp_path):
    plugin = FillingBank(str(tmp_path / "bank"))
    store = ChunkStore.create(Bank(plugin), chunker=SMALL, pack_size=128 * KiB,
                              kdf=ScryptParams(n=2 ** 10),
                              tuning=Tuning(workers=2, lease_seconds=60, lease_grace=0))
    yield plugin, store
    store.close()


def _full_message(exc: BaseException, plugin: FillingBank) -> str:
    assert isinstance(exc, exception.BankFull), repr(exc)
    text = exc.msg
    assert f"Bank {plugin.root} is full: no space left on device" in text
    assert "uncommitted" not in text
    return text


@pytest.mark.parametrize("size", [20 * KiB, 600 * KiB], ids=["one-pack", "many-packs"])
def test_enospc_while_writing_packs_is_reported_as_a_full_bank(filling, size):
    plugin, store = filling
    data = os.urandom(size)

    class FillsUp(io.BytesIO):
        """Fills the bank once the lease is written and the first block is read."""

        def readinto(self, buffer):
            plugin.full = True
            return super().readinto(buffer)

    with pytest.raises(exception.BankError) as caught:
        store.write_stream(FillsUp(data), "checkpoints/cp1/r1")
    _full_message(caught.value, plugin)
    # the commit failed, so nothing is listed
    assert store.list_manifests() == []


def test_later_writes_on_the_full_bank_say_so_too(filling):
    plugin, store = filling
    plugin.full = True
    for attempt in range(2):
        with pytest.raises(exception.BankError) as caught:
            store.write_bytes(os.urandom(40 * KiB), f"checkpoints/cp{attempt}/r1")
        _full_message(caught.value, plugin)


def test_a_full_bank_is_not_retried(filling):
    plugin, store = filling
    plugin.full = True
    before = plugin.writes
    with pytest.raises(exception.BankFull):
        store.put("/probe", b"x")
    assert plugin.writes == before + 1


def test_the_file_system_bank_maps_enospc_itself(tmp_path):
    class NoRoom(FileSystemBankPlugin):
        @staticmethod
        def _write_file(directory, path, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    plugin = NoRoom(root=str(tmp_path / "bank"))
    with pytest.raises(exception.BankFull) as caught:
        plugin.update_object("/chunks/packs/ab/abcd", b"data")
    assert caught.value.msg == (f"Bank {plugin.root} is full: no space left on device "
                                "(writing /chunks/packs/ab/abcd).")
