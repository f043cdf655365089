"""Karbor's data mover against restic and borg on the same dataset, in one run. Not a test.

The dataset (generated deterministically in a temporary directory) mixes what a backup
sees: a sparse disk image (half holes; its data half random, half text-like), files of
random (incompressible) data and 10,000 small text files. Each tool then does

* ``first``   - a backup of the dataset into an empty repository;
* ``second``  - a backup after a 5 % change (some small files rewritten, some files
  appended to, the disk image and a random file modified in a few places, new files);
* ``restore`` - a full restore of the second backup into an empty directory (checked
  against the dataset afterwards, outside the timing).

Every tool and phase runs in its own child process: MB/s is the dataset's logical size
(10**6 bytes) over the child's wall time, peak RSS is the child's ``ru_maxrss`` (os.wait4).
The bank/repository size is the bytes of the files under its directory. Karbor runs
through the directory plugin's ``protect_tree`` / ``restore_tree`` on a file-system bank,
unencrypted and encrypted (AES-256-GCM); restic 0.14 always encrypts (AES-256-CTR +
Poly1305, zstd "auto"); borg 1.2 runs with ``repokey-blake2`` (AES-256-CTR + BLAKE2b) and
``zstd,3`` (zstd's default level; Karbor writes level 2). The sources are read from the
page cache by every tool. Restored trees stay until the round ends: creating files right
after thousands were deleted costs ext4 much more (it skips recently freed inodes), which
would slow whichever tool restores after another's tree was removed.

    python benchmarks/datamover.py            # ~1 GiB
    python benchmarks/datamover.py --quick    # ~128 MiB
    python benchmarks/datamover.py --size-mib 512 --tools karbor,restic

The machine's other load makes absolute MB/s noisy; the ratios of one run are what count.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import blake3

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MiB = 1 << 20
PASSPHRASE = "datamover benchmark passphrase"
RESOURCE = "0c0ffee0-0000-4000-8000-000000000001"
CHECKPOINTS = {"first": "11111111-1111-4111-8111-111111111111",
               "second": "22222222-2222-4222-8222-222222222222"}
TOOLS = ("karbor", "karbor-enc", "karbor-progress", "restic", "borg")


# ---------------------------------------------------------------------------- dataset

def _random_bytes(label: str, n: int, seek: int = 0) -> bytes:
    """Deterministic incompressible bytes (BLAKE3 in XOF mode: GB/s)."""
    return blake3.blake3(label.encode()).digest(length=n, seek=seek)


def _write_random(f, label: str, n: int) -> None:
    pos = 0
    while pos < n:
        step = min(8 * MiB, n - pos)
        f.write(_random_bytes(label, step, pos))
        pos += step


class _Text:
    """Text-like bytes: slices of a pool of random words in lines (compresses ~2.5:1)."""

    def __init__(self, seed: int = 7, pool: int = 8 * MiB):
        rnd = random.Random(seed)
        words = [rnd.randbytes(rnd.randint(1, 6)).hex().encode() for _ in range(5000)]
        lines, size = [], 0
        while size < pool:
            line = b" ".join(rnd.choices(words, k=rnd.randint(4, 14))) + b"\n"
            lines.append(line)
            size += len(line)
        self.pool = b"".join(lines)

    def take(self, rnd: random.Random, n: int) -> bytes:
        out, left = [], n
        while left:
            at = rnd.randrange(len(self.pool) - 1)
            piece = self.pool[at:at + min(left, len(self.pool) - at, 256 * 1024)]
            out.append(piece)
            left -= len(piece)
        return b"".join(out)


def _text_sizes(rnd: random.Random, count: int, total: int) -> list[int]:
    raw = [rnd.expovariate(1.0) + 0.05 for _ in range(count)]
    scale = total / sum(raw)
    return [max(16, int(r * scale)) for r in raw]


def make_dataset(root: str, size: int, files: int) -> dict:
    """The dataset: 40 % sparse image (half allocated), 40 % random files, 20 % text
    files (``files`` of them). Returns the layout the change step needs."""
    rnd = random.Random(1)
    text = _Text()
    os.makedirs(root)
    # sparse disk image: 1 MiB-aligned extents of data, half random, half text
    img_size = int(size * 0.4) // MiB * MiB
    img = os.path.join(root, "disk.img")
    with open(img, "wb") as f:
        f.truncate(img_size)
        blocks = img_size // MiB
        used = sorted(rnd.sample(range(blocks), blocks // 2))
        runs, start = [], None
        for i, b in enumerate(used):
            if start is None:
                start = b
            if i + 1 == len(used) or used[i + 1] != b + 1:
                runs.append((start, b + 1))
                start = None
        for k, (a, b) in enumerate(runs):
            f.seek(a * MiB)
            n = (b - a) * MiB
            if k % 2:
                f.write(text.take(rnd, n))
            else:
                _write_random(f, f"img-{k}", n)
    # random data: six files of growing size
    rand_total = int(size * 0.4)
    os.makedirs(os.path.join(root, "random"))
    weights = [1, 2, 3, 4, 5, 6]
    for i, w in enumerate(weights):
        with open(os.path.join(root, "random", f"r{i}.bin"), "wb") as f:
            _write_random(f, f"rand-{i}", rand_total * w // sum(weights))
    # small text files in 100 directories
    sizes = _text_sizes(rnd, files, size - img_size - rand_total)
    names = []
    for i, n in enumerate(sizes):
        d = os.path.join(root, "text", f"d{i % 100:02d}")
        if i < 100:
            os.makedirs(d)
        name = os.path.join(d, f"f{i:05d}.txt")
        with open(name, "wb") as f:
            f.write(text.take(rnd, n))
        names.append(name)
    return {"image": img, "image_size": img_size, "texts": names,
            "randoms": [os.path.join(root, "random", f"r{i}.bin")
                        for i in range(len(weights))]}


def change_dataset(root: str, layout: dict, fraction: float = 0.05) -> dict:
    """Change ``fraction`` of the dataset's bytes the way users do: 20 % of it rewrites
    small files, 20 % appends to files, 40 % overwrites a few regions in place (6 in the
    disk image, 2 in a random file), 20 % is new files."""
    rnd = random.Random(2)
    text = _Text(seed=8)
    budget = int(dataset_size(root) * fraction)
    done = {"rewritten": 0, "appended": 0, "modified": 0, "new": 0}
    # rewrite small text files (whole)
    goal = budget * 0.2
    for name in rnd.sample(layout["texts"], len(layout["texts"])):
        if done["rewritten"] >= goal:
            break
        n = os.path.getsize(name)
        with open(name, "wb") as f:
            f.write(text.take(rnd, n))
        done["rewritten"] += n
    # appends: two random files (random data), 50 text files (text)
    for k, name in enumerate(layout["randoms"][-2:]):
        n = int(budget * 0.15 / 2)
        with open(name, "ab") as f:
            _write_random(f, f"append-{k}", n)
        done["appended"] += n
    for name in rnd.sample(layout["texts"], 50):
        n = int(budget * 0.05 / 50)
        with open(name, "ab") as f:
            f.write(text.take(rnd, n))
        done["appended"] += n
    # in-place overwrites in a few places
    regions = [(layout["image"], int(budget * 0.3 / 6)) for _ in range(6)]
    regions += [(layout["randoms"][2], int(budget * 0.1 / 2)) for _ in range(2)]
    for k, (name, n) in enumerate(regions):
        size = os.path.getsize(name)
        at = rnd.randrange(0, size - n) // 4096 * 4096
        with open(name, "r+b") as f:
            f.seek(at)
            f.write(_random_bytes(f"modify-{k}", n))
        done["modified"] += n
    # new files: one random, 200 text
    new = os.path.join(root, "new")
    os.makedirs(new)
    n = int(budget * 0.1)
    with open(os.path.join(new, "fresh.bin"), "wb") as f:
        _write_random(f, "fresh", n)
    done["new"] += n
    for i in range(200):
        n = int(budget * 0.1 / 200)
        with open(os.path.join(new, f"note{i:03d}.txt"), "wb") as f:
            f.write(text.take(rnd, n))
        done["new"] += n
    return done


def dataset_size(root: str) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(root) for f in fs)


def allocated(root: str) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_blocks * 512
               for d, _, fs in os.walk(root) for f in fs)


def digest_tree(root: str) -> dict[str, str]:
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            h = blake3.blake3(max_threads=blake3.blake3.AUTO)
            with open(p, "rb") as fh:
                while piece := fh.read(8 * MiB):
                    h.update(piece)
            out[os.path.relpath(p, root)] = h.hexdigest()
    return out


# ---------------------------------------------------------------------------- children

def child_karbor(args) -> None:
    """One Karbor phase, in this (child) process."""
    from karbor.resource import Resource
    from karbor.services.protection.bank_plugin import Bank
    from karbor.services.protection.bank_plugins.file_system import FileSystemBankPlugin
    from karbor.services.protection.chunkstore import ChunkStore

    # Loaded with or without reporting: a server always has it (and the database layer it
    # imports), so its import time is no cost of reporting.
    from karbor.services.protection.progress import OperationProgress  # noqa: F401
    from karbor.services.protection.protection_plugins import directory

    bank = Bank(FileSystemBankPlugin(root=args.bank))
    passphrase = PASSPHRASE if args.encrypted else None
    progress = tracker = None
    if args.progress:
        tracker = _UnsavedProgress().start()
        progress = tracker.for_resource(Resource(type=directory.RESOURCE_TYPE, id=RESOURCE,
                                                 name=args.src))
    with ChunkStore.open_or_create(bank, passphrase=passphrase) as store:
        if args.phase in ("first", "second"):
            cp = CHECKPOINTS[args.phase]
            tree = directory.protect_tree(store, args.src, cp, RESOURCE, progress)
            bank.update_object(f"/checkpoints/{cp}/{RESOURCE}/tree", tree)
            bank.flush()
        else:
            cp = CHECKPOINTS["second"]
            tree = bank.get_object(f"/checkpoints/{cp}/{RESOURCE}/tree")
            directory.restore_tree(store, tree, args.target, cp, RESOURCE, in_place=False,
                                   progress=progress)
    if tracker is not None:
        tracker.finish(True)


def _UnsavedProgress():
    """The engine's progress tracker, saving to nowhere: what reporting costs the data
    path (counting, locking, the saver thread building the document every second)
    without the database write, which is one small UPDATE a second."""
    import json

    from karbor.services.protection.progress import OperationProgress

    class Unsaved(OperationProgress):
        def save(self, doc=None):
            json.dumps(doc if doc is not None else self.document())

    return Unsaved(None, "benchmark", [], interval=1.0)


def run_child(cmd: list[str], env: dict, cwd: str | None = None) -> tuple[float, int]:
    """``(seconds, peak RSS in bytes)`` of a child process; raises if it fails."""
    with tempfile.TemporaryFile() as out:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
        elapsed = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode:
            out.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n"
                               f"{out.read().decode(errors='replace')[-3000:]}")
    return elapsed, usage.ru_maxrss * 1024


class Tool:
    def __init__(self, name: str, work: str, src: str):
        self.name = name
        self.repo = os.path.join(work, f"repo-{name}")
        self.src = src
        self.env = dict(os.environ)

    def command(self, phase: str, target: str) -> tuple[list[str], str | None]:
        raise NotImplementedError

    def restored_root(self, target: str) -> str:
        return target

    def setup(self) -> None:
        pass


class Karbor(Tool):
    def __init__(self, name, work, src, encrypted: bool, progress: bool = False):
        super().__init__(name, work, src)
        self.encrypted = encrypted
        self.progress = progress
        self.env["PYTHONPATH"] = str(REPO)

    @property
    def describe(self) -> str:
        text = ("Karbor fs bank, zstd 2, AES-256-GCM" if self.encrypted
                else "Karbor fs bank, zstd 2, not encrypted (BLAKE3 checksums)")
        return text + (", progress reported" if self.progress else "")

    def command(self, phase, target):
        cmd = [sys.executable, __file__, "--child", phase, "--bank", self.repo,
               "--src", self.src, "--target", target]
        return (cmd + (["--encrypted"] if self.encrypted else [])
                + (["--progress"] if self.progress else [])), None


class Restic(Tool):
    describe = "restic 0.14, repo v2, zstd auto, AES-256-CTR + Poly1305"

    def __init__(self, name, work, src):
        super().__init__(name, work, src)
        self.env.update(RESTIC_PASSWORD=PASSPHRASE, RESTIC_REPOSITORY=self.repo,
                        RESTIC_CACHE_DIR=os.path.join(work, "restic-cache"))

    def setup(self):
        subprocess.run(["restic", "init", "--repository-version", "2"], env=self.env,
                       check=True, capture_output=True)

    def command(self, phase, target):
        if phase == "restore":
            return ["restic", "restore", "latest", "--target", target], None
        return ["restic", "backup", "--quiet", self.src], None

    def restored_root(self, target):
        return os.path.join(target, self.src.lstrip("/"))


class Borg(Tool):
    describe = "borg 1.2, repokey-blake2 (AES-256-CTR + BLAKE2b), zstd,3"

    def __init__(self, name, work, src):
        super().__init__(name, work, src)
        self.env.update(BORG_PASSPHRASE=PASSPHRASE, BORG_BASE_DIR=os.path.join(work, "borg"),
                        BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")

    def setup(self):
        subprocess.run(["borg", "init", "--encryption", "repokey-blake2", self.repo],
                       env=self.env, check=True, capture_output=True)

    def command(self, phase, target):
        if phase == "restore":
            return ["borg", "extract", "--sparse", f"{self.repo}::second"], target
        return ["borg", "create", "--compression", "zstd,3",
                f"{self.repo}::{phase}", self.src], None

    def restored_root(self, target):
        return os.path.join(target, self.src.lstrip("/"))


def ensure_tools(names: list[str]) -> None:
    need = [n for n in ("restic", "borg") if n in names and shutil.which(n) is None]
    if need and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-q"], check=True)
        pkgs = ["restic" if n == "restic" else "borgbackup" for n in need]
        subprocess.run(["apt-get", "install", "-y", "-q", *pkgs], check=True)
    for n in need:
        if shutil.which(n) is None:
            sys.exit(f"{n} is not installed (run as root to have it installed with apt-get)")


def tree_bytes(root: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)


# ---------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--quick", action="store_true", help="128 MiB instead of 1 GiB")
    ap.add_argument("--files", type=int, default=10000, help="small text files")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--workdir", default=None, help="parent of the temporary directory")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat everything (new dataset and repositories, the tools in "
                         "rotated order) and keep each tool's best round per phase")
    # child mode (internal)
    ap.add_argument("--child", choices=("first", "second", "restore"))
    ap.add_argument("--bank")
    ap.add_argument("--src")
    ap.add_argument("--target")
    ap.add_argument("--encrypted", action="store_true")
    ap.add_argument("--progress", action="store_true",
                    help="(child) report progress as the engine's hooks do")
    args = ap.parse_args()
    if args.child:
        args.phase = args.child
        child_karbor(args)
        return
    size = (128 if args.quick else args.size_mib) * MiB
    names = [t for t in args.tools.split(",") if t]
    for n in names:
        if n not in TOOLS:
            sys.exit(f"unknown tool {n}; known: {', '.join(TOOLS)}")
    ensure_tools(names)
    best: tuple[dict, dict] | None = None
    for r in range(max(1, args.rounds)):
        work = tempfile.mkdtemp(prefix="datamover-", dir=args.workdir)
        try:
            if args.rounds > 1:
                print(f"== round {r + 1} of {args.rounds}")
            order = names[r % len(names):] + names[:r % len(names)]
            results, sizes, logical, logical2 = run(work, size, args.files, order)
        finally:
            if args.keep:
                print(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        if best is None:
            best = ({n: results[n] for n in names}, {n: sizes[n] for n in names})
        else:
            for n in names:
                for phase in ("first", "second", "restore"):
                    if results[n][phase][0] > best[0][n][phase][0]:
                        best[0][n][phase] = results[n][phase]
                if results[n]["check"] != "ok":
                    best[0][n]["check"] = results[n]["check"]
    if args.rounds > 1:
        print(f"\n== best of {args.rounds} rounds per tool and phase "
              "(bank sizes: first round)")
        report(*best, logical, logical2)


def run(work: str, size: int, files: int, names: list[str]):
    src = os.path.join(work, "data")
    t = time.perf_counter()
    layout = make_dataset(src, size, files)
    logical, alloc = dataset_size(src), allocated(src)
    print(f"dataset: {logical / MiB:.0f} MiB logical ({alloc / MiB:.0f} MiB allocated), "
          f"{files} small text files, generated in {time.perf_counter() - t:.1f} s; "
          f"{os.cpu_count()} CPUs")
    tools: list[Tool] = []
    for n in names:
        if n == "karbor":
            tools.append(Karbor(n, work, src, encrypted=False))
        elif n == "karbor-progress":
            tools.append(Karbor(n, work, src, encrypted=False, progress=True))
        elif n == "karbor-enc":
            tools.append(Karbor(n, work, src, encrypted=True))
        elif n == "restic":
            tools.append(Restic(n, work, src))
        else:
            tools.append(Borg(n, work, src))
    for tool in tools:
        tool.setup()
        print(f"  {tool.name:<11} {tool.describe}")
    os.sync()
    digest_tree(src)  # every tool reads the dataset from the page cache
    time.sleep(2)
    results: dict[str, dict] = {t.name: {} for t in tools}
    sizes: dict[str, dict] = {t.name: {} for t in tools}

    def phase(name: str, data_bytes: int) -> None:
        for tool in tools:
            target = os.path.join(work, f"restore-{tool.name}")
            if name == "restore":
                os.makedirs(target)
            cmd, cwd = tool.command(name, target)
            seconds, rss = run_child(cmd, tool.env, cwd)
            results[tool.name][name] = (data_bytes / seconds / 1e6, seconds, rss)
            if name == "restore":
                got = digest_tree(tool.restored_root(target))
                ok = "ok" if got == expected else "MISMATCH"
                results[tool.name]["check"] = ok
            else:
                sizes[tool.name][name] = tree_bytes(tool.repo)
            os.sync()  # each tool starts with the previous one's writes on disk

    phase("first", logical)
    changed = change_dataset(src, layout)
    logical2 = dataset_size(src)
    print(f"change: {sum(changed.values()) / MiB:.1f} MiB "
          f"({sum(changed.values()) / logical:.1%}): "
          + ", ".join(f"{k} {v / MiB:.1f} MiB" for k, v in changed.items()))
    expected = digest_tree(src)
    os.sync()
    phase("second", logical2)
    phase("restore", logical2)
    report(results, sizes, logical, logical2)
    return results, sizes, logical, logical2


def report(results: dict, sizes: dict, logical: int, logical2: int) -> None:
    base = results.get("restic")
    head = (f"{'tool':<11} {'first MB/s':>10} {'second MB/s':>11} {'restore MB/s':>12} "
            f"{'bank MiB':>9} {'+2nd MiB':>9} {'peak RSS MiB':>12}  restore")
    print()
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        s = sizes[name]
        rss = max(v[2] for k, v in r.items() if k != "check") / MiB
        print(f"{name:<11} {r['first'][0]:>10.0f} {r['second'][0]:>11.0f} "
              f"{r['restore'][0]:>12.0f} {s['second'] / MiB:>9.1f} "
              f"{(s['second'] - s['first']) / MiB:>9.1f} {rss:>12.0f}  {r['check']}")
    print(f"(MB/s = dataset bytes / wall time of the child process: first {logical / 1e6:.0f} "
          f"MB, second and restore {logical2 / 1e6:.0f} MB; peak RSS per phase: "
          + "; ".join(f"{n} " + "/".join(f"{r[p][2] / MiB:.0f}"
                                          for p in ("first", "second", "restore"))
                      for n, r in results.items()) + " MiB)")
    if base:
        print()
        print("ratio to restic (speed: higher is better; bank: lower is better)")
        for name, r in results.items():
            if name == "restic":
                continue
            print(f"  {name:<11} first {r['first'][0] / base['first'][0]:.2f}x  "
                  f"second {r['second'][0] / base['second'][0]:.2f}x  "
                  f"restore {r['restore'][0] / base['restore'][0]:.2f}x  "
                  f"bank {sizes[name]['second'] / sizes['restic']['second']:.2f}x")
    on, off = results.get("karbor-progress"), results.get("karbor")
    if on and off:
        print()
        print("progress reporting on vs off (goal: costs under 2 % of protect throughput): "
              + ", ".join(f"{p} {on[p][0]:.0f} vs {off[p][0]:.0f} MB/s "
                          f"({on[p][0] / off[p][0] - 1:+.1%})"
                          for p in ("first", "second", "restore")))
    print()
    print("second backup's growth of the bank, relative to the dataset: "
          + ", ".join(f"{n} {(s['second'] - s['first']) / logical:.1%}"
                      for n, s in sizes.items()))


if __name__ == "__main__":
    main()
