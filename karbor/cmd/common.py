"""What every Karbor command does first: config, logging, database schema."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from karbor.common import config
from karbor.common.config import CONF

LOG = logging.getLogger("karbor")


def setup(argv: list[str] | None, prog: str, *, migrate: bool = True) -> None:
    config.parse_args(argv if argv is not None else sys.argv[1:], prog)
    level = logging.DEBUG if CONF.debug else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("stevedore", "waitress.queue", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if migrate and CONF.database.auto_migrate:
        from karbor.db import migration

        migration.db_sync()


def wait_for_signal() -> str:
    """Block until SIGINT or SIGTERM; return the signal's name."""
    stop = threading.Event()
    received = []

    def handler(signum, _frame):
        received.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop.wait(1):
        pass
    return received[0] if received else "SIGTERM"


def cli_errors(main):
    """Turn configuration errors into one readable line and exit status 2."""
    import functools

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except RuntimeError as exc:
            print(f"{Path(sys.argv[0]).name}: configuration error: {exc}", file=sys.stderr)
            return 2

    return wrapper
