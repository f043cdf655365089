"""The TaskFlow jobboard on Redis: how an accepted operation reaches a worker at once.

The operations table stays the record of what must run (the API writes it in
the same transaction as the checkpoint or restore).  A job on the board only
says "operation <id> is waiting", so that idle workers learn of it within
milliseconds without hammering the database.  Losing a job therefore costs
latency, never an operation: workers reconcile the table with the board (see
``dispatch``).  TaskFlow's ``RedisJobBoard`` gives atomic claims with an expiry
that the holder extends, so a SIGKILLed worker's job becomes claimable again.

Nothing here is imported unless ``[coordination] backend_url`` is set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from karbor.common.config import CONF

LOG = logging.getLogger(__name__)

JOB_NAME = "karbor-operation"
NAMESPACE = "karbor"


class DispatchError(Exception):
    """The jobboard could not be reached or answered with an error."""


class NotOwned(Exception):
    """The job is claimed by another worker (ours expired and it was claimed again)."""


def _is_outage(exc: BaseException) -> bool:
    """Whether a TaskFlow failure comes from the connection to Redis, not from the job."""
    import redis

    seen = exc.__cause__ or exc.__context__
    while seen is not None:
        if isinstance(seen, redis.exceptions.RedisError | OSError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def enabled() -> bool:
    return bool(CONF.coordination.backend_url)


def board_conf(url: str) -> dict[str, Any]:
    """TaskFlow's Redis board configuration for ``redis://[user:pass@]host[:port][/db]``.

    TaskFlow's own URI parsing drops the database number and names the host
    ``hostname``; spell it out here so the URL means what it means to redis-cli.
    Query parameters (``?socket_timeout=10``) are passed on to the client.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"[coordination] backend_url must be a redis:// or rediss:// URL, "
                         f"not {url!r}")
    conf: dict[str, Any] = {
        "board": "redis", "namespace": NAMESPACE, "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 6379,
        # A Redis that hangs must not hang an API request for long.
        "socket_connect_timeout": 2.0, "socket_timeout": 5.0,
    }
    path = parts.path.strip("/")
    if path:
        if not path.isdigit():
            raise ValueError(f"the database in [coordination] backend_url must be a number, "
                             f"not {path!r}")
        conf["db"] = int(path)
    if parts.username:
        conf["username"] = parts.username
    if parts.password:
        conf["password"] = parts.password
    if parts.scheme == "rediss":
        conf["ssl"] = True
    conf.update(parse_qsl(parts.query))
    return conf


def check_config() -> None:
    """Fail a service's start on a malformed URL (a down Redis is not an error)."""
    if enabled():
        try:
            board_conf(CONF.coordination.backend_url)
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None


def operation_id_of(job) -> str | None:
    details = job.details or {}
    value = details.get("operation_id")
    return value if isinstance(value, str) else None


class Board:
    """One connection to the jobboard, made on first use (again on the next call if that
    failed); once made, redis-py reconnects by itself after Redis restarts.

    Every method raises ``DispatchError`` when Redis cannot be reached, so
    callers fall back to the database without knowing TaskFlow's exceptions.
    Safe to share between threads (redis-py pools its connections).
    """

    def __init__(self, url: str):
        self.url = url
        self._conf = board_conf(url)
        self._board = None
        self._lock = threading.Lock()

    def _connected(self):
        from taskflow.jobs import backends

        with self._lock:
            if self._board is None:
                board = backends.fetch(NAMESPACE, dict(self._conf))
                try:
                    board.connect()
                except Exception as exc:
                    raise DispatchError(f"cannot reach the jobboard: {exc}") from exc
                self._board = board
            return self._board

    def _call(self, name: str, *args, **kwargs):
        from taskflow import exceptions as tf_exc

        board = self._connected()
        try:
            return getattr(board, name)(*args, **kwargs)
        except (tf_exc.NotFound, tf_exc.UnclaimableJob):
            raise
        except Exception as exc:
            if isinstance(exc, tf_exc.JobFailure) and not _is_outage(exc):
                raise NotOwned(str(exc)) from exc
            raise DispatchError(f"jobboard {name} failed: {exc}") from exc

    def post(self, operation_id: str) -> None:
        try:
            self._call("post", JOB_NAME, details={"operation_id": operation_id})
        except NotOwned as exc:
            raise DispatchError(f"could not post operation {operation_id}: {exc}") from exc

    def jobs(self, only_unclaimed: bool = False) -> list:
        """Jobs on the board, oldest first (TaskFlow lists the newest first)."""
        try:
            found = list(self._connected().iterjobs(only_unclaimed=only_unclaimed,
                                                    ensure_fresh=True))
        except DispatchError:
            raise
        except Exception as exc:
            raise DispatchError(f"cannot list the jobboard: {exc}") from exc
        return sorted(found, key=lambda job: job.sequence)

    def claim(self, job, who: str, expiry: float) -> bool:
        """Claim ``job`` for ``expiry`` seconds; False when another worker was faster."""
        from taskflow import exceptions as tf_exc

        try:
            self._call("claim", job, who, expiry=expiry)
        except (tf_exc.NotFound, tf_exc.UnclaimableJob, NotOwned):
            return False
        return True

    def extend(self, job, expiry: float) -> bool:
        try:
            return bool(job.extend_expiry(expiry))
        except Exception as exc:
            raise DispatchError(f"cannot extend the claim of job {job.uuid}: {exc}") from exc

    def consume(self, job, who: str) -> None:
        """Remove a job whose operation is over (a job already gone is fine)."""
        from taskflow import exceptions as tf_exc

        try:
            self._call("consume", job, who)
        except (tf_exc.NotFound, tf_exc.UnclaimableJob):
            pass
        except NotOwned as exc:
            # Our claim expired and another worker holds the job: it will find the
            # operation over and consume the job itself.
            LOG.info("job %s left to its new owner: %s", job.uuid, exc)

    def abandon(self, job, who: str) -> None:
        """Give a claimed job back to the board for another worker (or a later try)."""
        from taskflow import exceptions as tf_exc

        try:
            self._call("abandon", job, who)
        except (tf_exc.NotFound, tf_exc.UnclaimableJob, NotOwned):
            pass

    def close(self) -> None:
        with self._lock:
            board, self._board = self._board, None
        if board is not None:
            try:
                board.close()
            except Exception:
                LOG.debug("closing the jobboard failed", exc_info=True)


_shared: Board | None = None
_shared_lock = threading.Lock()


def shared_board() -> Board | None:
    """This process's board for posting, or None when no backend is configured."""
    global _shared
    url = CONF.coordination.backend_url
    with _shared_lock:
        if _shared is not None and _shared.url != url:
            _shared.close()
            _shared = None
        if url and _shared is None:
            _shared = Board(url)
        return _shared


def reset_shared() -> None:
    global _shared
    with _shared_lock:
        board, _shared = _shared, None
    if board is not None:
        board.close()


def post_operations(operation_ids: Iterable[str]) -> None:
    """Post a job per operation; never raises.

    Called once the operations are committed: the request has succeeded, and a
    job that could not be posted is posted again by the workers' reconciliation.
    """
    try:
        board = shared_board()
        if board is None:
            return
        for operation_id in operation_ids:
            board.post(operation_id)
    except Exception as exc:
        LOG.warning("could not post operations to the jobboard (the workers' reconciliation "
                    "will pick them up from the database): %s", exc)
