"""Chunk store throughput on the file-system bank: first write, second write after a 5 %
change, full read, verify; with and without encryption. Not a test.

The source is a file of random bytes and a file of compressible text-like bytes (half each
by default), read from the page cache; the bank is a temporary directory. Prints MB/s
(10**6 bytes per second of source), the bank's growth and the process's peak RSS.

    python benchmarks/chunkstore.py [MiB]      # default 256
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from karbor.services.protection.bank_plugin import Bank  # noqa: E402
from karbor.services.protection.bank_plugins import file_system  # noqa: E402
from karbor.services.protection.chunkstore import ChunkStore  # noqa: E402

MiB = 1 << 20


def make_source(path: str, size: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    words = [rnd.randbytes(rnd.randint(2, 9)).hex().encode() for _ in range(20000)]
    with open(path, "wb") as f:
        half = size // 2
        f.write(rnd.randbytes(half))
        left = size - half
        while left > 0:
            line = b" ".join(rnd.choices(words, k=12)) + b"\n"
            piece = line * 1 if left > len(line) else line[:left]
            f.write(piece)
            left -= len(piece)


def change(path: str, out: str, fraction: float = 0.05, seed: int = 2) -> None:
    """Copy the file, overwriting ``fraction`` of it in 8 regions, one per eighth."""
    size = os.path.getsize(path)
    rnd = random.Random(seed)
    region = int(size * fraction / 8)
    with open(path, "rb") as f, open(out, "wb") as g:
        for _ in range(8):
            part = f.read(size // 8)
            at = rnd.randrange(len(part) - region)
            g.write(part[:at] + rnd.randbytes(region) + part[at + region:])
        g.write(f.read())


def bank_bytes(root: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)


def rate(n: int, t: float) -> str:
    return f"{n / t / 1e6:7.0f} MB/s"


def run(size: int, passphrase: str | None, src: str, src2: str) -> None:
    root = tempfile.mkdtemp(prefix="csbench-bank-")
    try:
        bank = Bank(file_system.FileSystemBankPlugin(root=root))
        with ChunkStore.create(bank, passphrase=passphrase) as store:
            label = "encrypted" if passphrase else "plain    "
            t = time.perf_counter()
            with open(src, "rb") as f:
                m = store.write_stream(f, "first")
            t1 = time.perf_counter() - t
            b1 = bank_bytes(root)
            t = time.perf_counter()
            with open(src2, "rb") as f:
                store.write_stream(f, "second")
            t2 = time.perf_counter() - t
            b2 = bank_bytes(root)
            t = time.perf_counter()
            n = sum(len(p) for p in store.read_stream("second"))
            t3 = time.perf_counter() - t
            assert n == size
            t = time.perf_counter()
            ok = store.verify("first").ok
            t4 = time.perf_counter() - t
            print(f"{label} first {rate(size, t1)}  second {rate(size, t2)}  "
                  f"read {rate(size, t3)}  verify {rate(size, t4)}  "
                  f"chunks {len(m.chunks)} (avg {size / len(m.chunks) / MiB:.2f} MiB)  "
                  f"bank {b1 / MiB:.0f} MiB +{(b2 - b1) / MiB:.1f} MiB "
                  f"({(b2 - b1) / size:.1%})  verify ok={ok}")
    finally:
        shutil.rmtree(root)


def main() -> None:
    size = int(sys.argv[1]) * MiB if len(sys.argv) > 1 else 256 * MiB
    work = tempfile.mkdtemp(prefix="csbench-src-")
    try:
        src, src2 = os.path.join(work, "a"), os.path.join(work, "b")
        make_source(src, size)
        change(src, src2)
        os.sync()  # the store's flushes would otherwise pay for writing the sources out
        print(f"{size // MiB} MiB source (half random, half text), {os.cpu_count()} CPUs")
        for passphrase in (None, "benchmark passphrase") * 2:
            run(size, passphrase, src, src2)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS {peak:.0f} MiB")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
