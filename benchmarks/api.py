#!/usr/bin/env python3
"""API benchmark: plan listing and plan creation against a real ``karbor-server``.

Starts ``karbor-server`` (embedded defaults: SQLite and the file-system bank in a
temporary state directory, noauth, a free local port), inserts N plans (default
10,000) of one project straight into its database through the SQLAlchemy models,
then measures requests/s and p50/p90/p99 latency with a few client threads for:

* ``GET  /v1/<p>/plans``          -- the default page (``osapi_max_limit`` = 1000 plans);
* ``GET  /v1/<p>/plans?limit=8``  -- the size of the original Karbor's reference run
  (once with a single client, once with the client threads);
* ``POST /v1/<p>/plans``          -- one plan with one resource.

Reference (the original Karbor, GET plans with 8 plans): p50 10.7 ms, p99 14.5 ms.
A ratio < 1 means faster than the reference.

Usage: python benchmarks/api.py [--plans 10000] [--threads 4] [--get-requests 200]
       [--small-get-requests 2000] [--post-requests 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

REFERENCE_P50_MS = 10.7
REFERENCE_P99_MS = 14.5
NOOP = "b766f37c-d011-4026-8228-28730d734a3f"
PROJECT_TYPE = "OS::Keystone::Project"


# --------------------------------------------------------------------------- the server


def _free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != 8799:
            return port


@contextlib.contextmanager
def karbor_server(state: Path, workers: int) -> Iterator[str]:
    import karbor

    port = _free_port()
    config = state.parent / "karbor.conf"
    providers = Path(karbor.__file__).parent / "etc" / "providers.d"
    config.write_text(
        "[DEFAULT]\n"
        f"state_path = {state}\n"
        "osapi_karbor_listen = 127.0.0.1\n"
        f"osapi_karbor_listen_port = {port}\n"
        f"osapi_karbor_workers = {workers}\n"
        "auth_strategy = noauth\n"
        f"provider_config_dir = {providers}\n")
    log = open(state.parent / "server.log", "wb")  # noqa: SIM115 - closed below
    executable = Path(sys.executable).parent / "karbor-server"
    proc = subprocess.Popen([str(executable), "--config-file", str(config)], stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                server_log = (state.parent / "server.log").read_text()
                raise SystemExit(f"karbor-server exited: {server_log}")
            try:
                urllib.request.urlopen(url + "/", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # the versions document is a 300
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("karbor-server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# --------------------------------------------------------------------------- seeding


def insert_plans(db_path: Path, project: str, count: int) -> float:
    """Insert ``count`` plans (one resource each) with the models; returns seconds."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from karbor.db import models

    started = time.perf_counter()
    engine = create_engine(f"sqlite:///{db_path}", connect_args={"timeout": 60})
    base = dt.datetime(2024, 1, 1)
    with Session(engine) as session:
        for start in range(0, count, 1000):
            plans, resources = [], []
            for i in range(start, min(start + 1000, count)):
                plan_id = str(uuid.uuid4())
                created = base + dt.timedelta(seconds=i)
                plans.append({"id": plan_id, "name": f"plan-{i:05d}",
                              "description": "benchmark plan", "provider_id": NOOP,
                              "project_id": project, "status": "suspended",
                              "parameters": "{}", "created_at": created, "deleted": False})
                resources.append({"plan_id": plan_id, "resource_id": project,
                                  "resource_type": PROJECT_TYPE, "resource_name": "project",
                                  "created_at": created, "deleted": False})
            session.execute(models.Plan.__table__.insert(), plans)
            session.execute(models.Resource.__table__.insert(), resources)
        session.commit()
    engine.dispose()
    return time.perf_counter() - started


# --------------------------------------------------------------------------- measuring


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def measure(name: str, requests_total: int, threads: int,
            send: Callable[[requests.Session, int], requests.Response],
            check: Callable[[requests.Response], None]) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests_total))

    def worker() -> None:
        session = requests.Session()
        mine: list[float] = []
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            t0 = time.perf_counter()
            resp = send(session, index)
            mine.append((time.perf_counter() - t0) * 1000)
            try:
                check(resp)
            except AssertionError as exc:
                with lock:
                    errors.append(str(exc))
        with lock:
            latencies.extend(mine)

    # Warm-up (connections, caches) outside the measurement.
    with requests.Session() as warm:
        for i in range(min(5, requests_total)):
            send(warm, -1 - i)
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    result = {
        "name": name, "requests": len(latencies), "threads": threads,
        "seconds": elapsed, "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50": percentile(latencies, 50), "p90": percentile(latencies, 90),
        "p99": percentile(latencies, 99), "max": max(latencies) if latencies else 0.0,
        "mean": statistics.fmean(latencies) if latencies else 0.0,
        "errors": len(errors), "first_error": errors[0] if errors else None,
    }
    return result


def report(result: dict, reference: bool) -> None:
    line = (f"{result['name']:<34} {result['requests']:>6} req  {result['threads']} thr  "
            f"{result['rps']:8.1f} req/s  p50 {result['p50']:8.2f} ms  "
            f"p90 {result['p90']:8.2f} ms  p99 {result['p99']:8.2f} ms  "
            f"max {result['max']:8.2f} ms")
    if reference:
        line += (f"  | vs original: p50 x{result['p50'] / REFERENCE_P50_MS:.2f}, "
                 f"p99 x{result['p99'] / REFERENCE_P99_MS:.2f}")
    if result["errors"]:
        line += f"  ERRORS {result['errors']}: {result['first_error']}"
    print(line, flush=True)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--server-workers", type=int, default=8,
                        help="osapi_karbor_workers of the server")
    parser.add_argument("--get-requests", type=int, default=200,
                        help="GET plans with the default page (1000 plans each)")
    parser.add_argument("--small-get-requests", type=int, default=2000,
                        help="GET plans?limit=8")
    parser.add_argument("--post-requests", type=int, default=1000)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    total_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="karbor-bench-") as tmp:
        state = Path(tmp) / "state"
        state.mkdir()
        project = uuid.uuid4().hex
        member = {"X-Auth-Token": f"bench:{project}"}
        admin = {"X-Auth-Token": f"admin:{project}"}
        with karbor_server(state, args.server_workers) as url:
            base = f"{url}/v1/{project}"
            seconds = insert_plans(state / "karbor.sqlite", project, args.plans)
            print(f"karbor-server at {url} (SQLite in {state}); inserted {args.plans} plans "
                  f"in {seconds:.1f}s; {os.cpu_count()} CPUs", flush=True)
            resp = requests.put(f"{base}/quotas/{project}", json={"quota": {"plans": -1}},
                                headers=admin, timeout=30)
            assert resp.status_code == 200, resp.text
            first = requests.get(f"{base}/plans", headers=member, timeout=120)
            assert first.status_code == 200, first.text
            page = len(first.json()["plans"])
            print(f"default page: {page} plans, {len(first.content) / 1024:.0f} KiB", flush=True)

            def ok_list(expected: int) -> Callable[[requests.Response], None]:
                def check(resp: requests.Response) -> None:
                    assert resp.status_code == 200, f"{resp.status_code} {resp.text[:200]}"
                    assert len(resp.json()["plans"]) == expected, "short page"
                return check

            def ok_create(resp: requests.Response) -> None:
                assert resp.status_code == 200, f"{resp.status_code} {resp.text[:200]}"

            body = json.dumps({"plan": {
                "name": "bench", "provider_id": NOOP, "parameters": {},
                "resources": [{"id": project, "type": PROJECT_TYPE, "name": "project"}]}})
            results = [
                measure("GET plans (default limit)", args.get_requests, args.threads,
                        lambda s, i: s.get(f"{base}/plans", headers=member, timeout=120),
                        ok_list(page)),
                measure("GET plans?limit=8 (1 client)", args.small_get_requests // 2, 1,
                        lambda s, i: s.get(f"{base}/plans?limit=8", headers=member,
                                           timeout=60),
                        ok_list(min(8, args.plans))),
                measure("GET plans?limit=8", args.small_get_requests, args.threads,
                        lambda s, i: s.get(f"{base}/plans?limit=8", headers=member,
                                           timeout=60),
                        ok_list(min(8, args.plans))),
                measure("POST plans", args.post_requests, args.threads,
                        lambda s, i: s.post(f"{base}/plans", data=body, timeout=60,
                                            headers={**member,
                                                     "Content-Type": "application/json"}),
                        ok_create),
            ]
    print()
    print(f"reference (original Karbor, GET plans, 8 plans): p50 {REFERENCE_P50_MS} ms, "
          f"p99 {REFERENCE_P99_MS} ms")
    for result in results:
        report(result, reference=result["name"].startswith("GET"))
    print(f"\ntotal wall time {time.perf_counter() - total_started:.0f}s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
