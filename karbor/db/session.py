"""One engine per process and a transaction-per-call session helper."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from karbor.common import config
from karbor.db.query import regex_search

_lock = threading.Lock()
_engine: Engine | None = None
_factory: sessionmaker | None = None
_write_intent: contextvars.ContextVar[bool] = contextvars.ContextVar("write", default=False)


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the single writer; the busy timeout turns
    # write contention into waiting instead of "database is locked" errors.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
    dbapi_conn.create_function("regexp", 2, _regexp, deterministic=True)


def _regexp(pattern, value):
    # RE2, never Python's backtracking ``re``: SQLite runs this while holding the
    # connection, and a pattern like ^(a+)+$ took seconds per row with ``re``.
    return regex_search(pattern, value)


def get_engine() -> Engine:
    global _engine, _factory
    with _lock:
        if _engine is None:
            url = config.database_url()
            kwargs: dict = {"future": True, "pool_pre_ping": True}
            if url.startswith("sqlite"):
                kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            else:
                kwargs.update(pool_size=10, max_overflow=20)
            engine = create_engine(url, **kwargs)
            if url.startswith("sqlite"):
                event.listen(engine, "connect", _sqlite_pragmas)
                # Let SQLAlchemy issue BEGIN itself so that transactions that
                # will write take the lock up front (BEGIN IMMEDIATE below).
                @event.listens_for(engine, "connect")
                def _no_pysqlite_begin(dbapi_conn, _record):
                    dbapi_conn.isolation_level = None

                @event.listens_for(engine, "begin")
                def _begin(conn):
                    conn.exec_driver_sql("BEGIN IMMEDIATE" if _write_intent.get() else "BEGIN")
            _engine = engine
            _factory = sessionmaker(bind=engine, expire_on_commit=False)
    return _engine


def dispose() -> None:
    global _engine, _factory
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None
        _factory = None


@contextlib.contextmanager
def session_scope(write: bool = False) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any error.

    ``write=True`` takes SQLite's write lock at BEGIN, so read-check-write
    sequences (quota, state transitions) cannot interleave.
    """
    get_engine()
    assert _factory is not None
    session = _factory()
    token = _write_intent.set(write)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        _write_intent.reset(token)
