#!/usr/bin/env python3
"""Scheduler benchmark: one operation engine firing N scheduled operations every minute.

N (default 10,000) ``protect`` operations -- each with its own plan (one resource) and its
own trigger ``FREQ=MINUTELY;INTERVAL=1`` -- are inserted through the SQLAlchemy models
into a fresh database (SQLite in a temporary directory, and PostgreSQL from Debian's
packages when it is installed; ``--backends``).  Then the engine's clock is injected:
``OperationEngine.scan(now)`` is called at each simulated minute T0+1min, T0+2min, ...
so that all N occurrences are due at once, and measured:

* scan duration: how long one engine takes to fire the N due occurrences (log row,
  checkpoint, queued protect job, operation log and quota in one transaction each);
* firing lag: per occurrence, from the scan's start (the instant the occurrence became
  due) to its checkpoint's ``created_at`` -- p50/p99/max.  In production the engine
  notices a due occurrence up to ``trigger_poll_interval`` (default 2 s) later: add that;
* CPU seconds per simulated minute (``resource.getrusage``, user+system, of this
  process, which holds the engine; SQLite runs in-process, PostgreSQL's own CPU is
  reported separately when it can be read from /proc): the firing scan plus the idle
  scans one engine makes in the rest of the minute (one per ``trigger_poll_interval``
  with nothing due, measured too).

The engine keeps up with N operations per minute when a firing scan takes well under
60 s.  ``--profile`` prints where the time of one firing scan goes (cProfile).

Usage: python benchmarks/scheduler.py [--operations 10000] [--minutes 1]
       [--backends sqlite,postgresql] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # for tests.functional.conftest.PostgresServer
    sys.path.insert(0, str(REPO))

from sqlalchemy import func, insert, select  # noqa: E402

from karbor.common import config, constants  # noqa: E402
from karbor.common.config import CONF  # noqa: E402
from karbor.db import migration, models  # noqa: E402
from karbor.db import session as db_session  # noqa: E402
from karbor.db.session import session_scope  # noqa: E402
from karbor.services.operationengine.engine import OperationEngine  # noqa: E402

NOOP = constants.NOOP_PROVIDER_ID
EVERY_MINUTE = "BEGIN:VEVENT\\nRRULE:FREQ=MINUTELY;INTERVAL=1;\\nEND:VEVENT"
T0 = dt.datetime(2030, 1, 1, 0, 0, 0)
PROJECTS = 100
BATCH = 2000


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered))) - 1))]


# --------------------------------------------------------------------------- backends


@contextlib.contextmanager
def sqlite_backend() -> Iterator[tuple[str, None]]:
    root = Path(tempfile.mkdtemp(prefix="karbor-bench-sqlite-"))
    try:
        yield f"sqlite:///{root / 'karbor.sqlite'}", None
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def postgresql_backend() -> Iterator[tuple[str, object]]:
    from tests.functional.conftest import PostgresServer

    pg = PostgresServer()
    try:
        pg.start()
        yield pg.create_database("karbor_bench"), pg
    finally:
        pg.stop()


def postgres_cpu_seconds(pg) -> float | None:
    """CPU seconds of every process of the private PostgreSQL cluster (Linux /proc)."""
    if pg is None:
        return None
    try:
        postmaster = int((pg.datadir / "postmaster.pid").read_text().split()[0])
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            pid, ppid = int(entry), int(fields[1])
            if pid == postmaster or ppid == postmaster:
                total += (int(fields[11]) + int(fields[12])) / tick
        return total
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- data


def populate(n: int) -> list[str]:
    """N plans, triggers, protect operations and their state rows, created before T0."""
    created = T0 - dt.timedelta(minutes=1)
    props = json.dumps({"format": "calendar", "pattern": EVERY_MINUTE,
                        "start_time": (T0 + dt.timedelta(minutes=1)).strftime(
                            "%Y-%m-%d %H:%M:%S")})
    projects = [uuid.uuid4().hex for _ in range(PROJECTS)]
    op_ids = []
    for start in range(0, n, BATCH):
        plans, resources, triggers, ops, states = [], [], [], [], []
        for i in range(start, min(n, start + BATCH)):
            project = projects[i % PROJECTS]
            plan, trigger, op = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
            plans.append({"id": plan, "name": f"plan {i}", "provider_id": NOOP,
                          "project_id": project, "status": "suspended", "parameters": "{}",
                          "created_at": created, "deleted": False})
            resources.append({"plan_id": plan, "resource_id": project,
                              "resource_type": "OS::Keystone::Project",
                              "resource_name": "project", "created_at": created,
                              "deleted": False})
            triggers.append({"id": trigger, "name": f"t{i}", "project_id": project,
                             "type": "time", "properties": props, "created_at": created,
                             "deleted": False})
            ops.append({"id": op, "name": f"op{i}", "operation_type": "protect",
                        "user_id": "bench", "project_id": project, "trigger_id": trigger,
                        "operation_definition": json.dumps({"plan_id": plan,
                                                            "provider_id": NOOP}),
                        "enabled": True, "created_at": created, "deleted": False})
            states.append({"operation_id": op, "state": "registered", "created_at": created,
                           "deleted": False})
            op_ids.append(op)
        with session_scope(write=True) as session:
            for model, rows in ((models.Plan, plans), (models.Resource, resources),
                                (models.Trigger, triggers), (models.ScheduledOperation, ops),
                                (models.ScheduledOperationState, states)):
                session.execute(insert(model), rows)
    return op_ids


def checkpoint_times(since: dt.datetime, occurrence: dt.datetime) -> list[dt.datetime]:
    stamp = occurrence.strftime("%Y-%m-%d %H:%M:%S")
    with session_scope() as session:
        rows = session.execute(select(models.Checkpoint.created_at, models.Checkpoint.extra_info)
                               .where(models.Checkpoint.created_at >= since)).all()
    return [created for created, extra in rows if json.loads(extra)["occurrence"] == stamp]


# --------------------------------------------------------------------------- the run


def run_backend(name: str, url: str, pg, args) -> dict:
    config.parse_args([], "karbor-scheduler-benchmark")
    db_session.dispose()
    state = Path(tempfile.mkdtemp(prefix="karbor-bench-state-"))
    CONF.set_override("state_path", str(state))
    CONF.set_override("connection", url, group="database")
    try:
        migration.db_sync()
        began = time.perf_counter()
        op_ids = populate(args.operations)
        print(f"[{name}] {len(op_ids)} scheduled operations inserted in "
              f"{time.perf_counter() - began:.1f} s", flush=True)
        engine = OperationEngine()
        # the first scan computes every operation's next_run_at (nothing is due before T0)
        engine.scan(T0 - dt.timedelta(seconds=30))
        idle = []
        for k in range(5):
            t = time.perf_counter()
            c = cpu_seconds()
            assert engine.scan(T0 - dt.timedelta(seconds=20 - k)) == 0
            idle.append((time.perf_counter() - t, cpu_seconds() - c))
        idle_wall = statistics.median(w for w, _ in idle)
        idle_cpu = statistics.median(c for _, c in idle)
        minutes = []
        for minute in range(1, args.minutes + 1):
            occurrence = T0 + dt.timedelta(minutes=minute)
            now = occurrence + dt.timedelta(seconds=1)
            start_utc = models.utcnow()
            cpu0, pg0 = cpu_seconds(), postgres_cpu_seconds(pg)
            profiler = cProfile.Profile() if args.profile and minute == args.minutes else None
            t0 = time.perf_counter()
            if profiler:
                profiler.enable()
            recorded = engine.scan(now)
            if profiler:
                profiler.disable()
            wall = time.perf_counter() - t0
            cpu = cpu_seconds() - cpu0
            pg1 = postgres_cpu_seconds(pg)
            lags = [(c - start_utc).total_seconds()
                    for c in checkpoint_times(start_utc, occurrence)]
            assert recorded == len(op_ids) == len(lags), (recorded, len(op_ids), len(lags))
            minutes.append({"wall": wall, "cpu": cpu, "lags": lags,
                            "pg_cpu": None if pg0 is None or pg1 is None else pg1 - pg0})
            print(f"[{name}] minute {minute}: fired {recorded} in {wall:.1f} s "
                  f"({recorded / wall:.0f}/s), engine CPU {cpu:.1f} s"
                  + (f", PostgreSQL CPU {pg1 - pg0:.1f} s" if pg1 is not None else ""),
                  flush=True)
            if profiler:
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
                print(f"[{name}] profile of minute {minute} (cumulative):\n{out.getvalue()}")
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(
                    r"karbor/(services|quota|db)", 20)
                print(f"[{name}] profile of minute {minute}, Karbor's functions:\n"
                      f"{out.getvalue()}")
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
                print(f"[{name}] profile of minute {minute} (own time):\n{out.getvalue()}")
        with session_scope() as session:
            logs = session.scalar(select(func.count()).select_from(models.ScheduledOperationLog)
                                  .where(models.ScheduledOperationLog.state == "success"))
        assert logs == len(op_ids) * args.minutes, logs
        return {"operations": len(op_ids), "idle_wall": idle_wall, "idle_cpu": idle_cpu,
                "minutes": minutes}
    finally:
        db_session.dispose()
        CONF.clear_override("connection", group="database")
        CONF.clear_override("state_path")
        shutil.rmtree(state, ignore_errors=True)


def report(name: str, result: dict) -> None:
    poll = CONF.trigger_poll_interval
    lags = [lag for m in result["minutes"] for lag in m["lags"]]
    walls = [m["wall"] for m in result["minutes"]]
    # the rest of the minute is spent in idle scans, one per poll interval (none at all
    # when firing takes the whole minute)
    idle_scans = max(0, int((60 - statistics.mean(walls)) / poll))
    cpus = [m["cpu"] for m in result["minutes"]]
    n = result["operations"]
    per_minute_cpu = statistics.mean(cpus) + idle_scans * result["idle_cpu"]
    print(f"\n== {name}: {n} scheduled operations firing every minute, one engine ==")
    print(f"  firing scan (all {n} due): mean {statistics.mean(walls):.2f} s, "
          f"max {max(walls):.2f} s  -> {n / statistics.mean(walls):.0f} occurrences/s; "
          f"keeps up with {n}/min: {'yes' if max(walls) < 60 else 'NO'}")
    print(f"  firing lag, due -> checkpoint created (s): p50 {percentile(lags, 50):.2f}  "
          f"p99 {percentile(lags, 99):.2f}  max {max(lags):.2f}  "
          f"(+ up to trigger_poll_interval = {poll:g} s in production)")
    print(f"  idle scan (nothing due): {result['idle_wall'] * 1000:.1f} ms wall, "
          f"{result['idle_cpu'] * 1000:.1f} ms CPU")
    print(f"  CPU per simulated minute (engine process): {per_minute_cpu:.2f} s "
          f"= firing scan {statistics.mean(cpus):.2f} s + {idle_scans} idle scans "
          f"{idle_scans * result['idle_cpu']:.2f} s  "
          f"({per_minute_cpu / 60 * 100:.0f}% of one core)")
    pg = [m["pg_cpu"] for m in result["minutes"] if m["pg_cpu"] is not None]
    if pg:
        print(f"  PostgreSQL server CPU per firing scan: {statistics.mean(pg):.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=10000)
    parser.add_argument("--minutes", type=int, default=1,
                        help="simulated minutes measured per backend")
    parser.add_argument("--backends", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql (skipped when PostgreSQL "
                             "is not installed)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the last firing scan and print the top functions")
    args = parser.parse_args(argv)
    results = {}
    for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if name == "sqlite":
            backend = sqlite_backend()
        elif name == "postgresql":
            if not (shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob(
                    "*/bin/initdb"))):
                print("[postgresql] skipped: PostgreSQL is not installed")
                continue
            backend = postgresql_backend()
        else:
            parser.error(f"unknown backend {name}")
        with backend as (url, pg):
            results[name] = run_backend(name, url, pg, args)
    for name, result in results.items():
        report(name, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
