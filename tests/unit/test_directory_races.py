"""The directory plugin against a tree that changes under it (issue 17, items 2 and 3).

Races are made deterministic by the plugin's ``_test_hook``: a test replaces it to swap a
directory for a symlink to an "outside" directory at exactly one named step. Whatever the
plugin then does, the outside directory (contents, modes, mtimes) must be unchanged and a
checkpoint must hold none of its data. Kills are real: the restore runs in a child
process that SIGKILLs itself at a named step; the restore run again with the same ids
must then succeed with a tree equal to the checkpoint's and no ``.karbor-restore-*`` left.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from karbor.services.protection.bank_plugin import Bank
from karbor.services.protection.bank_plugins.file_system import FileSystemBankPlugin
from karbor.services.protection.chunkstore import ChunkerParams, ChunkStore, ScryptParams, Tuning
from karbor.services.protection.protection_plugins import directory

KiB = 1024
REPO = Path(__file__).parents[2]
SECRET = b"OUTSIDE-THE-ROOTS " * 4096   # 72 KiB nobody may back up or overwrite
CP, RES = "3f0c1d2e-0000-4000-8000-00000000cafe", "5e1f2a3b-0000-4000-8000-00000000beef"
STORE_ARGS = {"prefix": "/chunks", "tuning": Tuning(workers=2, lease_seconds=60,
                                                     lease_grace=0)}


@pytest.fixture
def bank_root(tmp_path) -> Path:
    return tmp_path / "bank"


@pytest.fixture
def store(bank_root):
    s = ChunkStore.create(Bank(FileSystemBankPlugin(root=str(bank_root))),
                          chunker=ChunkerParams(min_size=4 * KiB, avg_size=16 * KiB,
                                                max_size=64 * KiB),
                          pack_size=128 * KiB, kdf=ScryptParams(n=2 ** 10), **STORE_ARGS)
    yield s
    s.close()


@pytest.fixture
def outside(tmp_path) -> Path:
    """A directory the plugin must never read or change, and its state."""
    out = tmp_path / "outside"
    (out / "deep").mkdir(parents=True)   # named like a directory of the tree
    (out / "secret.bin").write_bytes(SECRET)
    (out / "deep" / "more.bin").write_bytes(SECRET[::-1])
    for p, mode in ((out / "deep", 0o711), (out / "secret.bin", 0o640), (out, 0o755)):
        os.chmod(p, mode)
    for i, p in enumerate(sorted(out.rglob("*"), reverse=True) + [out]):
        os.utime(p, ns=(1_400_000_000_000_000_000 + i,) * 2)
    return out


def snapshot(top: Path) -> dict:
    """Everything a user sees of a tree (not following symlinks), by relative path."""
    out = {}
    inodes: dict[int, str] = {}
    for p in [top, *sorted(top.rglob("*"))]:
        st = os.lstat(p)
        rec = {"type": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode),
               "mtime_ns": st.st_mtime_ns}
        rel = str(p.relative_to(top))
        if stat.S_ISLNK(st.st_mode):
            rec["target"] = os.readlink(p)
            del rec["mode"]
        elif stat.S_ISREG(st.st_mode):
            rec["data"] = p.read_bytes()
            rec["same_as"] = inodes.setdefault(st.st_ino, rel)
        out[rel] = rec
    return out


def make_tree(top: Path) -> None:
    (top / "sub" / "deep").mkdir(parents=True)
    (top / "a.txt").write_bytes(b"a" * 3000)
    (top / "big.bin").write_bytes(os.urandom(200 * KiB))   # read by the walking thread
    (top / "sub" / "f1.txt").write_bytes(os.urandom(5000))
    (top / "sub" / "f2.txt").write_bytes(b"two\n" * 100)
    (top / "sub" / "deep" / "f3.txt").write_bytes(os.urandom(20 * KiB))
    os.link(top / "a.txt", top / "sub" / "hard.txt")
    os.link(top / "sub" / "f2.txt", top / "sub" / "zz-hard.txt")   # in the same directory
    os.symlink("../a.txt", top / "sub" / "link")
    os.chmod(top / "sub", 0o750)
    os.chmod(top / "sub" / "f2.txt", 0o600)
    for i, p in enumerate(sorted(top.rglob("*"), reverse=True) + [top]):
        os.utime(p, ns=(1_600_000_000_000_000_000 + i * 1_000_000_007,) * 2,
                 follow_symlinks=False)


def swap_for_symlink(path: Path, to: Path) -> None:
    """What an attacker with write access to the tree does: the directory goes (moved
    aside within the tree), a symlink to elsewhere takes its name."""
    os.rename(path, path.with_name(path.name + ".moved"))
    os.symlink(to, path)


def no_staging_left(*tops: Path) -> None:
    left = [str(p) for top in tops for p in top.rglob(".karbor-restore-*")]
    assert not left, left


def stream_bytes(store, tree: dict) -> bytes:
    out = []
    for key in directory._streams(tree):
        out.extend(bytes(b) for b in store.read_stream(f"dir/{CP}/{RES}/{key}"))
    return b"".join(out)


# ------------------------------------------------------------------------------ item 2

def test_protect_does_not_follow_a_directory_swapped_for_a_symlink(
        store, tmp_path, outside, monkeypatch):
    """2(a): the walk has listed ``sub`` as a directory; while it reads ``zz-late.bin``
    (listed after ``sub``, read before the walk enters it), ``sub`` becomes a symlink to
    the outside directory. The checkpoint leaves ``sub`` out as replaced (a warning) and
    holds none of the outside data."""
    monkeypatch.setattr(directory, "SMALL_SOURCE", 64 * KiB)  # read by the walking thread
    src = tmp_path / "src"
    make_tree(src)
    (src / "zz-late.bin").write_bytes(os.urandom(200 * KiB))
    before = snapshot(outside)

    def hook(name, **kw):
        if name == "file_opened" and kw["path"] == "zz-late.bin":
            swap_for_symlink(src / "sub", outside)

    monkeypatch.setattr(directory, "_test_hook", hook)
    tree = directory.protect_tree(store, str(src), CP, RES)
    paths = {e["path"] for e in tree["entries"]}
    assert paths == {"", "a.txt", "big.bin", "zz-late.bin"}
    assert tree["vanished"] == ["sub"]
    data = stream_bytes(store, tree)
    assert SECRET[:4096] not in data and SECRET[::-1][:4096] not in data
    out = tmp_path / "out"
    directory.restore_tree(store, tree, str(out), CP, RES, in_place=False)
    assert sorted(os.listdir(out)) == ["a.txt", "big.bin", "zz-late.bin"]
    assert snapshot(outside) == before


def test_protect_does_not_follow_a_small_file_swapped_for_a_symlink(
        store, tmp_path, outside, monkeypatch):
    """2(a), files: a small file read on a chunk-store worker after it became a symlink to
    an outside file is left out, not read through the link."""
    src = tmp_path / "src"
    make_tree(src)

    def hook(name, **kw):
        if name == "small_file" and kw["path"] == "sub/f1.txt":  # on a worker
            os.unlink(src / "sub" / "f1.txt")
            os.symlink(outside / "secret.bin", src / "sub" / "f1.txt")

    monkeypatch.setattr(directory, "_test_hook", hook)
    tree = directory.protect_tree(store, str(src), CP, RES)
    assert "sub/f1.txt" in tree["vanished"]
    assert SECRET[:4096] not in stream_bytes(store, tree)


@pytest.mark.parametrize("step,at", [("entry", "sub/deep"), ("entry", "sub/f1.txt"),
                                     ("entry", "sub/deep/f3.txt"),
                                     ("file_created", "a.txt")])
def test_in_place_restore_writes_nothing_through_a_swapped_directory(
        store, tmp_path, outside, monkeypatch, step, at):
    """2(b): during an in-place restore, ``sub`` becomes a symlink to the outside directory:
    before the restore first uses it, after it has made or opened it, or while a worker
    writes the first job of small files (``sub``'s among them, their directory checked
    already). Nothing is created or changed outside; the restore fails, naming the
    symlink, rather than reporting success."""
    src = tmp_path / "src"
    make_tree(src)
    tree = directory.protect_tree(store, str(src), CP, RES)
    (src / "sub" / "f1.txt").write_bytes(b"changed since the backup")
    os.unlink(src / "sub" / "deep" / "f3.txt")
    before = snapshot(outside)

    def hook(name, **kw):
        if name == step and kw["path"] == at:
            swap_for_symlink(src / "sub", outside)

    monkeypatch.setattr(directory, "_test_hook", hook)
    with pytest.raises(Exception) as failed:
        directory.restore_tree(store, tree, str(src), CP, RES, in_place=True)
    assert snapshot(outside) == before
    assert failed.type is directory.RestoreError
    assert "'sub' in the target is no longer a directory (a symlink?)" in str(failed.value)
    assert os.path.islink(src / "sub")
    no_staging_left(src, outside)


@pytest.mark.parametrize("in_place", [True, False])
def test_metadata_pass_does_not_follow_a_swapped_directory(
        store, tmp_path, outside, monkeypatch, in_place):
    """2(c): once the files are written, ``sub`` (mode 0750, an old mtime) becomes a
    symlink to the outside directory before directories get their modes and mtimes: the
    outside directory keeps its own, and the restore fails instead of reporting
    success; a restore into a new path leaves neither target nor staging behind."""
    src = tmp_path / "src"
    make_tree(src)
    tree = directory.protect_tree(store, str(src), CP, RES)
    target = src if in_place else tmp_path / "new" / "out"
    before = snapshot(outside)

    def hook(name, **kw):
        if name == "before_meta":
            top = src if in_place else next(target.parent.glob(".karbor-restore-*"))
            swap_for_symlink(top / "sub", outside)

    monkeypatch.setattr(directory, "_test_hook", hook)
    with pytest.raises(Exception) as failed:
        directory.restore_tree(store, tree, str(target), CP, RES, in_place=in_place)
    assert snapshot(outside) == before
    assert failed.type is directory.RestoreError
    assert "no longer a directory (a symlink?)" in str(failed.value)
    if not in_place:
        assert os.listdir(target.parent) == []
    no_staging_left(tmp_path)


# ------------------------------------------------------------------------------ item 3

CHILD = textwrap.dedent("""
    import json, os, signal, sys
    from karbor.services.protection.bank_plugin import Bank
    from karbor.services.protection.bank_plugins.file_system import FileSystemBankPlugin
    from karbor.services.protection.chunkstore import ChunkStore, Tuning
    from karbor.services.protection.protection_plugins import directory

    bank, tree, target, in_place, step, path, cp, res = sys.argv[1:]

    def hook(name, **kw):
        if name == step and (path == "-" or kw.get("path") == path):
            os.kill(os.getpid(), signal.SIGKILL)

    directory._test_hook = hook
    store = ChunkStore.open(Bank(FileSystemBankPlugin(root=bank)), prefix="/chunks",
                            tuning=Tuning(workers=2, lease_seconds=60, lease_grace=0))
    with open(tree) as f:
        tree = json.load(f)
    directory.restore_tree(store, tree, target, cp, res, in_place == "1")
    print("finished")
""")


def killed_restore(bank_root: Path, tree: dict, target: Path, in_place: bool,
                   step: str, path: str = "-") -> None:
    """Run the restore in a child process that SIGKILLs itself at ``step``."""
    tree_file = bank_root.parent / "tree.json"
    tree_file.write_text(json.dumps(tree))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(bank_root), str(tree_file),
                           str(target), "1" if in_place else "0", step, path, CP, RES],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("step,path", [("file_created", "sub/f2.txt"),
                                       ("file_created", "big.bin"),
                                       ("before_rename", "-"),
                                       ("renamed", "-")])
def test_restore_to_a_new_path_killed_then_run_again(store, bank_root, tmp_path, step,
                                                     path):
    """3: a restore into a new path killed -9 leaves nothing under the final name (no
    partial tree, no truncated file); run again with the same ids it succeeds, the tree
    equal to the source's in bytes, modes and mtimes, and no staging directory is left,
    also when the kill came after the rename, before the restore was recorded."""
    src = tmp_path / "src"
    make_tree(src)
    tree = directory.protect_tree(store, str(src), CP, RES)
    expected = snapshot(src)
    target = tmp_path / "restores" / "out"
    killed_restore(bank_root, tree, target, False, step, path)
    if step == "renamed":
        assert snapshot(target) == expected
    else:
        assert not os.path.lexists(target)
    directory.restore_tree(store, tree, str(target), CP, RES, in_place=False)
    assert snapshot(target) == expected
    no_staging_left(tmp_path / "restores")


def test_restore_into_an_existing_empty_directory_killed_then_run_again(
        store, bank_root, tmp_path):
    src = tmp_path / "src"
    make_tree(src)
    tree = directory.protect_tree(store, str(src), CP, RES)
    expected = snapshot(src)
    target = tmp_path / "out"
    target.mkdir()
    killed_restore(bank_root, tree, target, False, "file_created", "sub/deep/f3.txt")
    assert os.listdir(target) == []
    directory.restore_tree(store, tree, str(target), CP, RES, in_place=False)
    assert snapshot(target) == expected
    no_staging_left(tmp_path)


def test_in_place_restore_killed_twice_leaves_no_temporary_file(store, bank_root,
                                                                 tmp_path):
    """3: an in-place restore killed -9 twice while files were being written (each time
    with a temporary file in the tree), then run again: the tree is the checkpoint's again
    and holds no ``.karbor-restore-*`` file."""
    src = tmp_path / "src"
    make_tree(src)
    tree = directory.protect_tree(store, str(src), CP, RES)
    expected = snapshot(src)
    (src / "a.txt").write_bytes(b"edited after the backup")
    (src / "sub" / "f2.txt").write_bytes(b"")
    os.unlink(src / "sub" / "deep" / "f3.txt")
    killed_restore(bank_root, tree, src, True, "file_created", "sub/f2.txt")
    killed_restore(bank_root, tree, src, True, "file_created", "big.bin")
    directory.restore_tree(store, tree, str(src), CP, RES, in_place=True)
    assert snapshot(src) == expected
    no_staging_left(src)


def test_restore_into_a_non_empty_directory_is_refused(store, tmp_path):
    """The staging does not change what a user asking for a new path gets refused."""
    src = tmp_path / "src"
    make_tree(src)
    tree = directory.protect_tree(store, str(src), CP, RES)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "mine.txt").write_bytes(b"keep me")
    with pytest.raises(Exception, match="exists and is not an empty directory"):
        directory.restore_tree(store, tree, str(target), CP, RES, in_place=False)
    assert os.listdir(target) == ["mine.txt"]
    no_staging_left(tmp_path)


def test_open_directories_stay_bounded(store, tmp_path, monkeypatch):
    """A tree of many tiny directories (one small file each, like node_modules) is walked
    and restored through directory descriptors without holding one per directory: the
    process stays far below a 1024-descriptor limit."""
    src = tmp_path / "src"
    for i in range(1500):
        d = src / f"d{i // 50:02d}" / f"e{i:04d}"
        d.mkdir(parents=True)
        (d / "f").write_bytes(b"x" * (i % 700 + 1))
    base = len(os.listdir("/proc/self/fd"))
    peak = [0]

    def hook(name, **kw):
        if name in ("small_file", "file_created"):
            peak[0] = max(peak[0], len(os.listdir("/proc/self/fd")) - base)

    monkeypatch.setattr(directory, "_test_hook", hook)
    tree = directory.protect_tree(store, str(src), CP, RES)
    protect_peak, peak[0] = peak[0], 0
    out = tmp_path / "out"
    directory.restore_tree(store, tree, str(out), CP, RES, in_place=False)
    assert protect_peak and peak[0]
    limit = directory.BUSY_DIRS + directory.OPEN_DIRS + 100
    assert protect_peak < limit and peak[0] < limit, (protect_peak, peak[0])
    assert len(os.listdir("/proc/self/fd")) <= base
    assert sorted(p.relative_to(out) for p in out.rglob("f")) == sorted(
        p.relative_to(src) for p in src.rglob("f"))


def test_a_staging_directory_in_use_is_left_alone(store, tmp_path):
    """An attempt that took over while the first still runs (its staging directory
    locked) fails instead of removing or renaming what the first is writing."""
    import fcntl

    src = tmp_path / "src"
    make_tree(src)
    tree = directory.protect_tree(store, str(src), CP, RES)
    target = tmp_path / "out"
    stage = tmp_path / (directory.STAGING + directory._restore_key(CP, RES, str(target)))
    stage.mkdir()
    (stage / "partial").write_bytes(b"being written")
    fd = os.open(stage, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(directory.RestoreError, match="another restore .* is running"):
            directory.restore_tree(store, tree, str(target), CP, RES, in_place=False)
        assert os.listdir(stage) == ["partial"] and not target.exists()
    finally:
        os.close(fd)
    directory.restore_tree(store, tree, str(target), CP, RES, in_place=False)
    assert snapshot(target) == snapshot(src)
    no_staging_left(tmp_path)
