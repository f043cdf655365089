#!/usr/bin/env python3
"""One operation-engine process on a scaled clock, for the exactly-once integration test.

Every engine of a test run gets the same ``--real-start`` (a Unix timestamp) and
``--sim-start`` (naive UTC), so they agree on simulated time::

    simulated now = sim_start + (time.time() - real_start) * speed

The process runs the production loop (``OperationEngine.start``: scan, then wait
``trigger_poll_interval``) against ``--db-url`` (schema already migrated) until
SIGTERM or SIGINT, then exits 0.  After each scan that recorded something it
appends ``<real time> <simulated now> <recorded>`` to ``--stats`` (flushed, so a
SIGKILLed engine leaves what it had reported).

Usage: engine_runner.py --db-url URL --real-start TS --sim-start "YYYY-MM-DD HH:MM:SS"
       [--speed 30] [--poll 0.05] [--stats FILE] [--name NAME]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import threading
import time


def scaled_clock(real_start: float, sim_start: dt.datetime, speed: float):
    def clock() -> dt.datetime:
        return sim_start + dt.timedelta(seconds=(time.time() - real_start) * speed)
    return clock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--real-start", type=float, required=True)
    parser.add_argument("--sim-start", required=True,
                        type=lambda s: dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S"))
    parser.add_argument("--speed", type=float, default=30.0)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--stats")
    parser.add_argument("--name", default="engine")
    args = parser.parse_args(argv)

    from karbor.cmd import common
    from karbor.common import config
    from karbor.common.config import CONF

    config.parse_args([], "karbor-operationengine")
    CONF.set_override("connection", args.db_url, group="database")
    CONF.set_override("trigger_poll_interval", args.poll)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s {args.name} %(levelname)s %(name)s: %(message)s")

    from karbor.db import session as db_session
    from karbor.services.operationengine.engine import OperationEngine

    stats = open(args.stats, "a", buffering=1) if args.stats else None  # noqa: SIM115
    lock = threading.Lock()

    class CountingEngine(OperationEngine):
        """The production engine; only reports what each scan recorded."""

        def scan(self, now: dt.datetime | None = None) -> int:
            now = now or self.clock()
            recorded = super().scan(now)
            if recorded and stats is not None:
                with lock:
                    stats.write(f"{time.time():.3f} {now:%Y-%m-%d %H:%M:%S} {recorded}\n")
            return recorded

    engine = CountingEngine(clock=scaled_clock(args.real_start, args.sim_start, args.speed))
    db_session.get_engine()  # connect (and fail) before the agreed start, not after it
    print(f"{args.name} ready", flush=True)
    delay = args.real_start - time.time()
    if delay > 0:
        time.sleep(delay)
    engine.start()
    signame = common.wait_for_signal()
    logging.getLogger("engine_runner").info("%s: stopping on %s", args.name, signame)
    engine.stop()
    if stats is not None:
        stats.close()
    db_session.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
