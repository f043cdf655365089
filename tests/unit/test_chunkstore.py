"""The chunk store on the file-system bank: round trips, dedup, encryption, corruption,
garbage collection beside writers, copy between stores, bounded memory.

Small chunks (4–64 KiB) and packs (128 KiB) keep every test fast; the code paths are the
ones the default sizes (1 MiB chunks, 16 MiB packs) take.
"""

from __future__ import annotations

import io
import os
import random
import threading
import time
import tracemalloc

import pytest

from karbor.services.protection.bank_plugin import Bank
from karbor.services.protection.bank_plugins.file_system import FileSystemBankPlugin
from karbor.services.protection.chunkstore import (
    ChunkerParams,
    ChunkStore,
    ChunkStoreError,
    CorruptionError,
    GCBusy,
    LeaseExpired,
    ManifestNotFound,
    PassphraseRequired,
    ScryptParams,
    StoreExists,
    Tuning,
    WrongPassphrase,
    layout,
)
from karbor.services.protection.chunkstore import gc as gc_module
from karbor.services.protection.chunkstore.errors import InvalidName, NotEncrypted
from karbor.services.protection.chunkstore.gc import GarbageCollector
from karbor.services.protection.chunkstore.lease import GCLock

KiB = 1024
MiB = 1024 * KiB
SMALL = ChunkerParams(min_size=4 * KiB, avg_size=16 * KiB, max_size=64 * KiB)
PACK = 128 * KiB
FAST_KDF = ScryptParams(n=2 ** 10)


def tuning(**kw) -> Tuning:
    kw.setdefault("workers", 2)
    kw.setdefault("lease_seconds", 60)
    kw.setdefault("lease_grace", 0)
    return Tuning(**kw)


@pytest.fixture
def bank_root(tmp_path):
    return str(tmp_path / "bank")


@pytest.fixture
def bank(bank_root):
    return Bank(FileSystemBankPlugin(root=bank_root))


@pytest.fixture
def stores():
    opened = []
    yield opened
    for s in opened:
        s.close()


@pytest.fixture
def make(bank, stores):
    def make(passphrase=None, prefix="/chunks", on=None, **kw):
        kw.setdefault("chunker", SMALL)
        kw.setdefault("pack_size", PACK)
        kw.setdefault("kdf", FAST_KDF)
        kw.setdefault("tuning", tuning())
        s = ChunkStore.create(on or bank, passphrase=passphrase, prefix=prefix, **kw)
        stores.append(s)
        return s
    return make


def rand(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def read_all(store, name) -> bytes:
    return b"".join(store.read_stream(name))


def files_under(root: str, prefix: str = "chunks") -> dict[str, int]:
    base = os.path.join(root, "karbor", prefix)
    return {os.path.relpath(os.path.join(d, f), base): os.path.getsize(os.path.join(d, f))
            for d, _, fs in os.walk(base) for f in fs}


def stored_bytes(root: str, prefix: str = "chunks") -> int:
    return sum(files_under(root, prefix).values())


def pack_files(root: str, prefix: str = "chunks") -> list[str]:
    base = os.path.join(root, "karbor", prefix)
    return sorted(os.path.join(base, f) for f in files_under(root, prefix)
                  if f.startswith("packs/"))


both = pytest.mark.parametrize("passphrase", [None, "correct horse battery staple"],
                               ids=["plain", "encrypted"])


# ------------------------------------------------------------------------ round trips


def sparse_like(n: int) -> bytes:
    data = bytearray(n)
    r = random.Random(7)
    for _ in range(12):
        at = r.randrange(n - 5000)
        data[at:at + r.randrange(1, 5000)] = r.randbytes(5000)[:5000]
    return bytes(data[:n])


@both
@pytest.mark.parametrize("kind", ["random", "zeros", "sparse", "text", "empty", "one-byte"])
def test_round_trip_is_byte_identical(make, passphrase, kind):
    store = make(passphrase)
    data = {"random": rand(700 * KiB), "zeros": bytes(900 * KiB),
            "sparse": sparse_like(1 * MiB),
            "text": b"".join(b"line %d of a text file\n" % i for i in range(40000)),
            "empty": b"", "one-byte": b"x"}[kind]
    m = store.write_bytes(data, f"{kind}/stream", {"kind": kind})
    assert m.size == len(data)
    assert read_all(store, f"{kind}/stream") == data
    got = store.get_manifest(f"{kind}/stream")
    assert got.metadata == {"kind": kind} and got.chunks == m.chunks
    assert store.verify(f"{kind}/stream").ok
    # A second handle on the same bank reads it too (everything needed is in the bank).
    other = ChunkStore.open(store.section.bank, passphrase=passphrase, prefix="/chunks",
                            tuning=tuning())
    try:
        assert read_all(other, f"{kind}/stream") == data
    finally:
        other.close()


def test_zeros_are_stored_once_and_compressed(make, bank_root):
    store = make()
    m = store.write_bytes(bytes(4 * MiB), "zeros")
    assert m.stats.new_chunks == 1
    assert stored_bytes(bank_root) < 16 * KiB


def test_range_reads(make):
    store = make()
    data = rand(600 * KiB, 3)
    store.write_bytes(data, "r")
    for offset, length in [(0, 1), (1, 70000), (123456, 200000), (len(data) - 5, 100),
                           (len(data), 10), (0, None)]:
        got = b"".join(store.read_stream("r", offset, length))
        end = len(data) if length is None else offset + length
        assert got == data[offset:end]


def test_read_only_stream_without_readinto(make):
    class Pipe:
        def __init__(self, data):
            self._f = io.BytesIO(data)

        def read(self, n):
            return self._f.read(min(n, 999))  # short reads, as from a pipe

    store = make()
    data = rand(300 * KiB, 4)
    store.write_stream(Pipe(data), "pipe")
    assert read_all(store, "pipe") == data


def test_names_are_checked_and_missing_manifests_are_clear(make):
    store = make()
    for bad in ["", "/abs", "a//b", "a/../b", "sp ace", "a/"]:
        with pytest.raises(InvalidName):
            store.write_bytes(b"x", bad)
    with pytest.raises(ManifestNotFound, match="nope"):
        read_all(store, "nope")
    store.write_bytes(b"x", "a/b@1")
    assert store.list_manifests() == ["a/b@1"]


def test_create_twice_is_refused_and_open_or_create_opens(make, bank):
    store = make()
    with pytest.raises(StoreExists):
        ChunkStore.create(bank, prefix="/chunks")
    again = ChunkStore.open_or_create(bank, prefix="/chunks", tuning=tuning())
    try:
        assert again.store_id == store.store_id
    finally:
        again.close()


# ------------------------------------------------------------------------ dedup


def test_unchanged_data_adds_no_chunks(make, bank_root):
    store = make()
    data = rand(2 * MiB, 5)
    store.write_bytes(data, "cp1")
    before = stored_bytes(bank_root)
    m = store.write_bytes(data, "cp2")
    assert m.stats.new_chunks == 0
    # A manifest (about 35 bytes per chunk) and nothing else.
    assert stored_bytes(bank_root) - before < 40 * len(m.chunks) + 512


@both
def test_five_percent_change_adds_at_most_six_percent(make, bank_root, passphrase):
    """16 MiB in ~20 KiB chunks: as many chunks as 1 GiB in the default ~1.2 MiB ones."""
    store = make(passphrase)
    size = 16 * MiB
    data = rand(size, 6)
    store.write_bytes(data, "cp1")
    before = stored_bytes(bank_root)
    changed = bytearray(data)
    changed[5 * MiB:5 * MiB + size // 20] = rand(size // 20, 7)
    m = store.write_bytes(bytes(changed), "cp2")
    added = stored_bytes(bank_root) - before
    assert added <= 0.06 * size, (added / size, m.stats)
    assert read_all(store, "cp2") == bytes(changed)
    assert read_all(store, "cp1") == data


def test_shifted_data_dedups(make):
    """Inserting or deleting bytes moves every later byte; content-defined cuts follow."""
    store = make()
    data = rand(4 * MiB, 8)
    store.write_bytes(data, "cp1")
    for name, edited in [("insert", data[:100_000] + b"+" * 77 + data[100_000:]),
                         ("delete", data[:2_000_000] + data[2_000_333:])]:
        m = store.write_bytes(edited, name)
        assert m.stats.new_bytes <= 4 * SMALL.max_size, (name, m.stats)
        assert read_all(store, name) == edited


def test_several_streams_in_one_session_share_packs(make):
    store = make()
    a, b = rand(100 * KiB, 10), rand(100 * KiB, 11)
    with store.session() as s:
        s.write_stream(io.BytesIO(a), "a")
        s.write_stream(io.BytesIO(b + a), "b")
        assert store.list_manifests() == []  # nothing visible before the commit
    assert read_all(store, "a") == a and read_all(store, "b") == b + a


def test_block_reads_cut_exactly_like_fastcdc_over_the_whole_stream():
    """The chunker reads blocks and cuts each with FastCDC, carrying the undecided tail
    over: the cuts equal pyfastcdc's stream cuts, whatever the reads return."""
    from pyfastcdc import FastCDC

    from karbor.services.protection.chunkstore.chunker import Chunker

    data = rand(3 * MiB, 12) + bytes(700 * KiB) + rand(500 * KiB, 13)
    expected = [bytes(c.data) for c in FastCDC(
        SMALL.avg_size, min_size=SMALL.min_size, max_size=SMALL.max_size,
        normalized_chunking=SMALL.normalization, seed=99).cut_stream(io.BytesIO(data))]

    class ShortReads:
        def __init__(self):
            self._f = io.BytesIO(data)
            self._rnd = random.Random(5)

        def read(self, n):
            return self._f.read(min(n, self._rnd.randint(1, 50_000)))

    chunker = Chunker(SMALL, 99)
    for source, kw in [(io.BytesIO(data), {}), (io.BytesIO(data), {"block_size": 1}),
                       (io.BytesIO(data), {"size_hint": len(data)}),
                       (io.BytesIO(data), {"size_hint": 100}), (ShortReads(), {})]:
        views = list(chunker.chunks(source, **kw))
        assert [bytes(v) for v in views] == expected  # views stay valid
    assert list(chunker.chunks(io.BytesIO(b""), size_hint=0)) == []


def test_stream_of_many_sources_and_reuse(make):
    """One manifest from several sources: no chunk spans two, offsets are returned, and
    chunks the store has are appended without reading; a missing one is refused."""
    store = make()
    a, b, c = rand(150 * KiB, 30), b"small file", rand(90 * KiB, 31)
    with store.session() as s:
        st = s.stream("tree", {"k": 1})
        placed = []

        def done(offset, length, info):
            placed.append((info, offset, length))

        st.write(io.BytesIO(a), len(a), done, "a")
        st.write_small(lambda: (b, "b"), len(b), done)
        st.write_small(lambda: (bytearray(c), "c"), len(c), done)
        m1 = st.close()
        assert placed == [("a", 0, len(a)), ("b", len(a), len(b)),
                          ("c", len(a) + len(b), len(c))]
    assert read_all(store, "tree") == a + b + c
    assert store.get_manifest("tree").metadata == {"k": 1}
    sizes = [n for _, n in m1.chunks]
    ends = {sum(sizes[:i + 1]) for i in range(len(sizes))}
    assert {len(a), len(a) + len(b)} <= ends  # cut at every source boundary
    b_chunk = [(cid, n) for cid, n in m1.chunks if n == len(b)]
    with store.session() as s:
        st = s.stream("again")
        placed.clear()
        assert st.reuse(m1.chunks, done, "all")
        assert not st.reuse([(bytes(32), 5)], done, "x")  # not in the store: nothing added
        assert st.reuse(b_chunk, done, "b")
        m2 = st.close()
        assert placed == [("all", 0, len(a + b + c)), ("b", len(a + b + c), len(b))]
        assert m2.stats.new_chunks == 0 and m2.stats.bytes_in == len(a + b + c + b)
    assert read_all(store, "again") == a + b + c + b
    assert store.verify("again").ok


@both
def test_incompressible_chunks_are_stored_without_trying_zstd(make, passphrase):
    from karbor.services.protection.chunkstore import blob

    store = make(passphrase, chunker=ChunkerParams(min_size=256 * KiB, avg_size=MiB,
                                                   max_size=4 * MiB), pack_size=8 * MiB)
    noise, text = rand(300 * KiB, 40), b"some words repeat, " * 20_000
    assert blob._incompressible(noise) and not blob._incompressible(text)
    m = store.write_bytes(noise + text, "mixed")
    assert m.stats.stored_bytes < len(noise) + len(text) // 10
    assert read_all(store, "mixed") == noise + text


def test_concurrent_writers_in_one_process(make):
    store = make()
    datas = {f"w{i}": rand(500 * KiB, 20 + i % 2) + bytes([i]) * 1000 for i in range(4)}
    errors = []

    def write(name):
        try:
            store.write_bytes(datas[name], name)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=write, args=(n,)) for n in datas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for name, data in datas.items():
        assert read_all(store, name) == data


# ------------------------------------------------------------------------ encryption


def test_encrypted_bank_holds_no_plaintext(make, bank_root):
    store = make("s3cret passphrase")
    marker = b"KARBOR-DISTINCTIVE-PLAINTEXT-7f3a9c"
    data = b"".join(marker + b" %06d\n" % i for i in range(30000)) + rand(200 * KiB, 12)
    store.write_bytes(data, "secret", {"note": marker.decode()})
    assert read_all(store, "secret") == data
    base = os.path.join(bank_root, "karbor", "chunks")
    seen = 0
    for rel in files_under(bank_root):
        with open(os.path.join(base, rel), "rb") as f:
            content = f.read()
        seen += 1
        assert marker not in content, rel
        assert marker[:12] not in content, rel
    assert seen > 3


def test_passphrase_errors(make, bank):
    store = make("right one")
    store.write_bytes(b"data" * 1000, "x")
    with pytest.raises(WrongPassphrase, match="Wrong passphrase"):
        ChunkStore.open(bank, passphrase="wrong one", prefix="/chunks")
    with pytest.raises(PassphraseRequired):
        ChunkStore.open(bank, prefix="/chunks")
    plain = make(prefix="/plain")
    with pytest.raises(NotEncrypted):
        ChunkStore.open(bank, passphrase="x", prefix=plain.prefix)
    store.change_passphrase("new one", kdf=FAST_KDF)
    with pytest.raises(WrongPassphrase):
        ChunkStore.open(bank, passphrase="right one", prefix="/chunks")
    reopened = ChunkStore.open(bank, passphrase="new one", prefix="/chunks", tuning=tuning())
    try:
        assert read_all(reopened, "x") == b"data" * 1000
    finally:
        reopened.close()


def test_chunk_ids_are_keyed_per_store(make):
    a, b = make(prefix="/a"), make(prefix="/b")
    data = rand(50 * KiB, 13)
    assert a.write_bytes(data, "x").chunks != b.write_bytes(data, "x").chunks


# ------------------------------------------------------------------------ corruption


def flip_byte(path: str, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))


@both
def test_flipped_byte_is_reported_and_never_read_back(make, bank_root, passphrase):
    store = make(passphrase)
    data = rand(1 * MiB, 14)
    m = store.write_bytes(data, "victim")
    store.write_bytes(rand(200 * KiB, 15), "bystander")
    loc = store.index.lookup(m.chunks[len(m.chunks) // 2][0])
    # The fs bank prefixes bytes objects with a 16-byte marker; flip inside that blob.
    flip_byte(os.path.join(bank_root, "karbor", "chunks", layout.pack_key(loc.pack_id)),
              16 + loc.offset + loc.length // 2)

    bad = [s for s in ("victim", "bystander") if not store.verify(s).ok]
    assert bad == ["victim"]
    report = store.verify("victim")
    assert len(report.bad) == 1
    assert report.bad[0]["reason"].startswith("chunk ")
    assert ("authentication failed" if passphrase else "checksum mismatch") \
        in report.bad[0]["reason"]

    got = []
    with pytest.raises(CorruptionError, match="manifest victim: chunk [0-9a-f]{64}"):
        for piece in store.read_stream("victim"):
            got.append(piece)
    out = b"".join(got)
    assert out == data[:len(out)] and len(out) < len(data)
    assert read_all(store, "bystander") == rand(200 * KiB, 15)
    assert not store.check().ok


def test_missing_pack_is_a_clear_error(make, bank_root):
    store = make()
    store.write_bytes(rand(300 * KiB, 16), "x")
    os.unlink(pack_files(bank_root)[0])
    assert not store.verify("x").ok
    with pytest.raises(CorruptionError, match="missing"):
        read_all(store, "x")
    assert any("missing from the bank" in e for e in store.check(read_data=False).errors)


def test_tampered_manifest_is_refused(make, bank_root):
    store = make("pw")
    store.write_bytes(b"abc" * 1000, "m")
    path = os.path.join(bank_root, "karbor", "chunks", "manifests", "m")
    flip_byte(path, os.path.getsize(path) - 3)
    with pytest.raises(CorruptionError, match="manifest m"):
        store.get_manifest("m")
    assert not store.verify("m").ok


def test_check_passes_on_a_healthy_store(make):
    store = make("pw")
    store.write_bytes(rand(400 * KiB, 17), "a")
    store.write_bytes(sparse_like(300 * KiB), "b")
    report = store.check()
    assert report.ok, report.errors
    assert report.packs >= 2 and report.manifests == 2 and report.orphan_packs == 0


# ------------------------------------------------------------------------ garbage collection


@both
def test_deleting_every_manifest_empties_the_chunk_area(make, bank_root, passphrase):
    store = make(passphrase)
    for i in range(3):
        store.write_bytes(rand(300 * KiB, 30 + i) + sparse_like(100 * KiB), f"cp{i}")
    assert len(pack_files(bank_root)) > 3
    for name in store.list_manifests():
        store.delete_manifest(name)
    report = store.gc()
    assert report.deleted_packs > 3
    assert list(files_under(bank_root)) == ["config"]


def test_deleting_one_manifest_keeps_the_others(make, bank_root):
    store = make()
    base = rand(600 * KiB, 40)
    datas = {"cp0": base, "cp1": base[:300 * KiB] + rand(200 * KiB, 41),
             "cp2": rand(400 * KiB, 42)}
    for name, data in datas.items():
        store.write_bytes(data, name)
    before = stored_bytes(bank_root)
    store.delete_manifest("cp0")
    report = store.gc()
    assert report.deleted_packs >= 1
    assert stored_bytes(bank_root) < before - 200 * KiB
    for name in ("cp1", "cp2"):
        assert read_all(store, name) == datas[name]
        assert store.verify(name).ok
    assert store.check().ok


def test_mostly_dead_packs_are_repacked(make, bank_root):
    store = make(pack_size=4 * MiB)  # one session, one pack for both streams
    a, b = rand(900 * KiB, 43), rand(100 * KiB, 44)
    with store.session() as s:
        s.write_stream(io.BytesIO(a), "a")
        s.write_stream(io.BytesIO(b), "b")
    assert len(pack_files(bank_root)) == 1
    store.delete_manifest("a")
    report = store.gc()
    assert report.repacked_packs == 1 and report.deleted_packs == 1
    assert stored_bytes(bank_root) < 200 * KiB
    assert read_all(store, "b") == b


def test_many_index_files_are_consolidated(make):
    store = make()
    for i in range(6):
        store.write_bytes(rand(50 * KiB, 50 + i), f"s{i}")
    assert len(store.index.files) == 6
    GarbageCollector(store, consolidate_over=2).run()
    assert len(store.index.files) == 1
    for i in range(6):
        assert read_all(store, f"s{i}") == rand(50 * KiB, 50 + i)


def test_gc_refuses_while_another_holds_the_lock(make):
    store = make()
    lock = GCLock(store.section, 30, 0).start()
    try:
        with pytest.raises(GCBusy):
            store.gc()
    finally:
        lock.release()
    store.gc()


def test_gc_refuses_to_run_on_an_unreadable_manifest(make, bank_root):
    store = make()
    store.write_bytes(rand(100 * KiB, 55), "good")
    store.write_bytes(rand(100 * KiB, 56), "broken")
    flip_byte(os.path.join(bank_root, "karbor", "chunks", "manifests", "broken"), 20)
    with pytest.raises(ChunkStoreError, match="refused: manifest broken"):
        store.gc()
    assert store.verify("good").ok
    store.delete_manifest("broken")
    assert store.gc().deleted_packs >= 1
    assert read_all(store, "good") == rand(100 * KiB, 55)


@pytest.mark.parametrize("crash", ["between the record's two writes",
                                   "after the index files, before the packs"])
def test_an_interrupted_gc_is_finished_by_the_next(make, bank_root, monkeypatch, crash):
    store = make()
    store.write_bytes(rand(300 * KiB, 57), "gone")
    store.write_bytes(rand(100 * KiB, 58), "kept")
    store.delete_manifest("gone")

    class Crash(Exception):
        pass

    def boom(*a, **kw):
        raise Crash()

    if crash.startswith("between"):
        monkeypatch.setattr(gc_module, "live_writers", boom)
    else:
        monkeypatch.setattr(store, "bank_flush", boom)
    with pytest.raises(Crash):
        store.gc()
    monkeypatch.undo()
    assert read_all(store, "kept") == rand(100 * KiB, 58)
    store.gc()
    assert store.check().ok and store.check().orphan_packs == 0
    assert read_all(store, "kept") == rand(100 * KiB, 58)
    store.delete_manifest("kept")
    store.gc()
    assert list(files_under(bank_root)) == ["config"]


def test_gc_waits_for_a_writer_that_reuses_condemned_chunks(make, bank_root):
    """The race: a writer dedups against chunks whose last manifest is deleted and
    collected before the writer commits. The collector must wait for that writer."""
    store = make()
    data = rand(500 * KiB, 60)
    store.write_bytes(data, "old")
    reports = []

    def collect_before_commit(session):
        store.delete_manifest("old")
        reports.append(store.gc())

    store.hooks["before_commit"] = collect_before_commit
    m = store.write_bytes(data + b"tail", "new")
    store.hooks.clear()
    assert m.stats.new_chunks <= 2  # it reused the old chunks
    assert reports[0].condemned_packs > 0 and reports[0].deleted_packs == 0
    assert reports[0].waiting_for and reports[0].pending_packs > 0
    report = store.gc()  # the writer is gone: the sweep sees its manifest
    assert report.kept_packs > 0 and report.deleted_packs == 0
    assert read_all(store, "new") == data + b"tail"
    assert store.check().ok
    store.delete_manifest("new")
    store.gc()
    assert list(files_under(bank_root)) == ["config"]


def test_writer_started_after_condemnation_stores_its_own_copies(make, bank_root):
    store = make()
    data = rand(400 * KiB, 61)
    store.write_bytes(data, "old")
    store.delete_manifest("old")
    blocker = store.session()  # a live writer: the record must wait for it
    try:
        report = store.gc()
        assert report.condemned_packs > 0 and report.deleted_packs == 0
        m = store.write_bytes(data, "new")  # sees the record: cannot reuse those chunks
        assert m.stats.new_chunks == len(m.chunk_ids())
    finally:
        blocker.close()
    report = store.gc()
    assert report.deleted_packs > 0
    assert read_all(store, "new") == data
    assert store.check().ok


def test_orphan_packs_of_a_crashed_writer_are_collected(make, bank_root):
    store = make()
    store.write_bytes(rand(100 * KiB, 62), "keep")
    s = store.session()
    s.write_stream(io.BytesIO(rand(500 * KiB, 63)), "lost")
    s._drain()                      # packs stored ...
    s._stored.clear()               # ... but the process dies before indexing them
    s._staged.clear()
    s.close()
    orphans = store.check(read_data=False).orphan_packs
    assert orphans > 0
    report = store.gc()
    assert report.deleted_packs >= orphans
    assert store.check(read_data=False).orphan_packs == 0
    assert read_all(store, "keep") == rand(100 * KiB, 62)


def index_files(root: str) -> set[str]:
    return {f for f in files_under(root) if f.startswith("index/")}


def test_lost_index_file_is_rebuilt_from_pack_headers_not_collected(make, bank_root):
    """The adversarial run's data loss: with the index file of cp1 moved away, its packs
    looked like a crashed writer's orphans and a delete of cp2 collected them."""
    store = make()
    data = rand(400 * KiB, 70)
    store.write_bytes(data, "cp1")
    cp1_index = index_files(bank_root)
    store.write_bytes(rand(300 * KiB, 71), "cp2")
    cp1_packs = set(pack_files(bank_root))
    base = os.path.join(bank_root, "karbor", "chunks")
    for f in cp1_index:
        os.rename(os.path.join(base, f), os.path.join(bank_root, os.path.basename(f)))
    store.delete_manifest("cp2")
    report = store.gc()
    # cp1 reads back byte for byte, from a fresh process's view of the bank too.
    assert read_all(store, "cp1") == data
    assert report.reindexed_packs >= 1 and report.missing_chunks == 0
    assert report.deleted_packs >= 1            # cp2's own packs still go
    fresh = ChunkStore.open(Bank(FileSystemBankPlugin(root=bank_root)))
    try:
        assert read_all(fresh, "cp1") == data
        assert fresh.verify("cp1").ok and fresh.check().ok
    finally:
        fresh.close()
    before = set(pack_files(bank_root))
    assert store.gc().deleted_packs == 0        # nothing of cp1 is ever collected
    assert set(pack_files(bank_root)) == before
    assert before <= cp1_packs


def test_gc_refuses_and_deletes_nothing_when_referenced_chunks_are_lost(make, bank_root):
    store = make()
    store.write_bytes(rand(200 * KiB, 72), "damaged")
    store.write_bytes(rand(200 * KiB, 73), "cp2")
    store.write_bytes(rand(200 * KiB, 74), "cp3")
    base = os.path.join(bank_root, "karbor", "chunks")
    lost = {cid for cid in store.get_manifest("damaged").chunk_ids()}
    lost_packs = {loc.pack_id for cid in lost for loc in store.index.locations(cid)}
    shared = {pid for pid in lost_packs
              if any(e.chunk_id not in lost for e in store.index.packs[pid])}
    assert not shared                            # one session, packs of its own
    for pid in lost_packs:
        os.remove(os.path.join(base, layout.pack_key(pid).lstrip("/")))
    for f in index_files(bank_root):             # and every index file with them
        os.remove(os.path.join(base, f))
    store.delete_manifest("cp2")
    before = set(pack_files(bank_root))
    with pytest.raises(ChunkStoreError, match="refused: .* referenced chunks are in no "
                                              "index nor in any pack"):
        store.gc()
    assert set(pack_files(bank_root)) == before  # cp3's packs, cp2's (unindexed) too
    assert read_all(store, "cp3") == rand(200 * KiB, 74)


def test_a_writer_whose_lease_lapsed_commits_nothing(make):
    store = make(tuning=tuning(lease_seconds=0.4))
    s = store.session()
    s._lease._stop.set()            # the process froze: no renewal
    s.write_stream(io.BytesIO(rand(100 * KiB, 64)), "late")
    time.sleep(0.5)
    with pytest.raises(LeaseExpired):
        s.commit()
    s.abort()
    assert store.list_manifests() == []


@pytest.mark.parametrize("handles", ["one store", "two stores"])
def test_gc_racing_writers_loses_nothing(make, bank, stores, handles):
    """Writers keep writing overlapping checkpoints and deleting old ones while a collector
    runs in a loop (in the same store object, or in another one, as another process would);
    every manifest that exists at the end reads back exactly."""
    store = make()
    collecting = store
    if handles == "two stores":
        collecting = ChunkStore.open(bank, prefix="/chunks", tuning=tuning())
        stores.append(collecting)
    base = rand(400 * KiB, 70)
    expected: dict[str, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def version(i: int) -> bytes:
        r = random.Random(i)
        at = r.randrange(len(base) - 20 * KiB)
        return base[:at] + r.randbytes(20 * KiB) + base[at + 20 * KiB:]

    def writer(w: int):
        try:
            for i in range(12):
                name = f"w{w}/cp{i}"
                data = version(w * 100 + i)
                store.write_bytes(data, name)
                with lock:
                    expected[name] = data
                if i >= 2:
                    old = f"w{w}/cp{i - 2}"
                    with lock:
                        del expected[old]
                    store.delete_manifest(old)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def collector():
        while not stop.is_set():
            try:
                collecting.gc()
            except GCBusy:
                pass
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
                return

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    gc_thread.join()
    assert not errors, errors
    store.gc()
    assert sorted(store.list_manifests()) == sorted(expected)
    for name, data in expected.items():
        assert read_all(store, name) == data, name
    assert store.check().ok


# ------------------------------------------------------------------------ copy


def test_copy_moves_only_missing_chunks(make, bank, tmp_path):
    src = make("source pw")
    other_bank = Bank(FileSystemBankPlugin(root=str(tmp_path / "bank2")))
    dst = make("target pw", on=other_bank, like=src)
    base = rand(800 * KiB, 80)
    changed = base[:400 * KiB] + rand(40 * KiB, 81) + base[440 * KiB:]
    src.write_bytes(base, "cp1", {"n": 1})
    src.write_bytes(changed, "cp2", {"n": 2})

    first = src.copy_to(dst, "cp1")
    assert first.mode == "chunks"
    assert first.copied_chunks == len(src.get_manifest("cp1").chunk_ids())
    second = src.copy_to(dst, "cp2")
    missing = src.get_manifest("cp2").chunk_ids() - src.get_manifest("cp1").chunk_ids()
    assert second.copied_chunks == len(missing)
    assert second.copied_bytes < 0.3 * len(changed)
    assert read_all(dst, "cp1") == base and read_all(dst, "cp2") == changed
    assert dst.get_manifest("cp2").metadata == {"n": 2}
    assert src.copy_to(dst, "cp2", "again").copied_chunks == 0
    assert dst.check().ok


def test_copy_between_unrelated_stores_rechunks(make, bank):
    src, dst = make(prefix="/one"), make("pw", prefix="/two")
    data = rand(300 * KiB, 82)
    src.write_bytes(data, "x")
    report = src.copy_to(dst, "x")
    assert report.mode == "rechunk"
    assert read_all(dst, "x") == data
    assert src.copy_to(dst, "x", "y").copied_chunks == 0


# ------------------------------------------------------------------------ memory


class RandomSource(io.RawIOBase):
    """``size`` pseudo-random bytes, produced as they are read (never all in memory)."""

    def __init__(self, size: int, seed: int = 0):
        self._left = size
        self._rnd = random.Random(seed)

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self._left, 256 * KiB)
        b[:n] = self._rnd.randbytes(n)
        self._left -= n
        return n


def test_memory_stays_bounded_while_streaming_64_mib(make):
    params = ChunkerParams(min_size=16 * KiB, avg_size=64 * KiB, max_size=256 * KiB)
    store = make("pw", chunker=params, pack_size=1 * MiB)
    size = 64 * MiB
    tracemalloc.start()
    try:
        m = store.write_stream(RandomSource(size, 90), "big")
        write_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        total = 0
        for piece in store.read_stream(m):
            total += len(piece)
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == size
    # chunker buffer (2 max) + chunks in flight (6 x 2 max) + pack being filled + packs
    # being stored or read (a few x 1 MiB), + the manifest and index themselves. Measured:
    # about 6 MiB each way.
    assert write_peak < 12 * MiB, write_peak / MiB
    assert read_peak < 12 * MiB, read_peak / MiB


def test_layout_keys():
    pid = bytes(range(32))
    key = layout.pack_key(pid)
    assert key == "packs/00/" + pid.hex()
    assert layout.pack_id_from_key(key) == pid
    assert layout.pack_id_from_key("packs/01/" + pid.hex()) is None


# ------------------------------------------------------------------ directory plugin trees


def _tree_files(root) -> dict[str, bytes]:
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


def test_directory_entries_deleted_during_protect_are_left_out(make, tmp_path,
                                                               monkeypatch):
    """A file, a big file, a symlink and a directory deleted between the walk and their
    reading do not fail the protect: the checkpoint has everything else, and the tree
    names what vanished."""
    import shutil

    from karbor.services.protection.protection_plugins import directory

    monkeypatch.setattr(directory, "SMALL_SOURCE", 64 * KiB)
    store = make()
    src = tmp_path / "src"
    (src / "dir" / "inner").mkdir(parents=True)
    (src / "dir" / "inner" / "x").write_bytes(b"inside a directory that goes")
    (src / "keep").mkdir()
    (src / "keep" / "a").write_bytes(rand(10 * KiB, 80))
    (src / "keep" / "big").write_bytes(rand(300 * KiB, 81))
    (src / "small").write_bytes(rand(20 * KiB, 82))
    (src / "big").write_bytes(rand(200 * KiB, 83))
    (src / "link").symlink_to("keep/a")
    doomed = {"small", "big", "link", "dir/inner"}
    real_walk = directory._walk

    def walk(top, vanished):
        for rel, st in real_walk(top, vanished):
            if rel in doomed:  # deleted after the walk saw it, before it is read
                path = os.path.join(top, rel)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) \
                    else os.unlink(path)
            yield rel, st

    monkeypatch.setattr(directory, "_walk", walk)
    tree = directory.protect_tree(store, str(src), "cp", "res")
    assert tree["vanished"] == sorted(doomed)
    assert {e["path"] for e in tree["entries"]} == {"", "dir", "keep", "keep/a",
                                                    "keep/big"}
    out = tmp_path / "out"
    directory.restore_tree(store, tree, str(out), "cp", "res", in_place=False)
    assert _tree_files(out) == _tree_files(src)
    assert sorted(os.listdir(out)) == ["dir", "keep"]
    assert directory.verify_tree(store, tree, "cp", "res") == []


def test_directory_files_cache_and_version_1_trees(make, tmp_path, monkeypatch):
    """The second protect reads only the files that changed (the files cache), and a
    version-1 tree (a manifest per file) still restores and verifies."""
    from karbor.services.protection.chunkstore.chunker import Chunker
    from karbor.services.protection.protection_plugins import directory

    store = make()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(20):
        (src / "sub" / f"f{i}").write_bytes(rand(1000 * (i + 1), 70 + i))
    (src / "big").write_bytes(rand(600 * KiB, 90))
    (src / "empty").write_bytes(b"")
    old = time.time_ns() - 10 ** 10  # the cache trusts files older than the last backup
    for p in [*src.rglob("*")]:
        os.utime(p, ns=(old, old))
    time.sleep(1.1)  # and whose ctime is a second older than its start
    tree1 = directory.protect_tree(store, str(src), "cp1", "res")
    assert tree1["version"] == 2
    (src / "sub" / "f3").write_bytes(b"changed")
    read = []
    real, real_reader = Chunker.chunks, directory._reader

    def counting(self, fileobj, *a, **kw):
        read.append(os.readlink(f"/proc/self/fd/{fileobj.fileno()}"))
        return real(self, fileobj, *a, **kw)

    def counting_reader(path, *a):
        inner = real_reader(path, *a)

        def read_small():
            read.append(path)
            return inner()
        return read_small

    monkeypatch.setattr(Chunker, "chunks", counting)
    monkeypatch.setattr(directory, "_reader", counting_reader)
    tree2 = directory.protect_tree(store, str(src), "cp2", "res")
    monkeypatch.undo()
    assert read == [str(src / "sub" / "f3")]
    out = tmp_path / "out"
    directory.restore_tree(store, tree2, str(out), "cp2", "res", in_place=False)
    assert _tree_files(out) == _tree_files(src)
    assert directory.verify_tree(store, tree2, "cp2", "res") == []

    # version 1: one manifest per file, entries without "offset"
    entries = [{"path": "", "type": "dir", "mode": 0o755, "mtime_ns": old, "uid": 0,
                "gid": 0}]
    with store.session() as s:
        for i, data in enumerate([rand(200 * KiB, 5), b"tiny", rand(70 * KiB, 6)]):
            s.write_stream(io.BytesIO(data), f"dir/old/res/f{i}")
            entries.append({"path": f"v{i}", "type": "file", "mode": 0o644,
                            "mtime_ns": old, "uid": 0, "gid": 0, "size": len(data),
                            "stream": f"f{i}", "sparse": False})
    tree_v1 = {"version": 1, "source": str(src), "entries": entries, "skipped": []}
    out1 = tmp_path / "out1"
    directory.restore_tree(store, tree_v1, str(out1), "old", "res", in_place=False)
    assert (out1 / "v0").read_bytes() == rand(200 * KiB, 5)
    assert (out1 / "v1").read_bytes() == b"tiny"
    assert directory.verify_tree(store, tree_v1, "old", "res") == []
