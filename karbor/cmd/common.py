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


# What each command runs, first in its --help: the names alone do not say that
# karbor-server is all of them or that karbor-wsgi is a quick check of the WSGI app.
DESCRIPTIONS = {
    "karbor-server": "Runs all of Karbor in one process: the REST API, a protection worker "
                     "and the operation engine (embedded mode; SQLite and a file-system bank "
                     "in state_path by default).",
    "karbor-api": "Runs Karbor's REST API alone (waitress threads); protection workers "
                  "(karbor-protection) and the operation engine (karbor-operationengine) "
                  "run elsewhere against the same database.",
    "karbor-wsgi": "Serves Karbor's REST API with waitress, as karbor-api: a quick check of "
                   "karbor.cmd.wsgi:application, the WSGI callable for uWSGI, gunicorn or "
                   "mod_wsgi (which reads its config files from KARBOR_CONFIG_FILE).",
    "karbor-protection": "Runs a Karbor protection worker: it claims the protect, restore, "
                         "verify, copy and delete operations queued in the database and runs "
                         "their plugins. Run any number against one database.",
    "karbor-operationengine": "Runs Karbor's operation engine: it fires the triggers and "
                              "starts the scheduled operations (as checkpoints) when due.",
}


def setup(argv: list[str] | None, prog: str, *, migrate: bool = True) -> None:
    config.parse_args(argv if argv is not None else sys.argv[1:], prog,
                      description=DESCRIPTIONS.get(prog))
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
    def wrapper(argv=None, **kwargs):
        try:
            return main(argv, **kwargs)
        except RuntimeError as exc:
            print(f"{Path(sys.argv[0]).name}: configuration error: {exc}", file=sys.stderr)
            return 2

    return wrapper
