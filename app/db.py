"""Database setup: the declarative base, engine and per-app scoped session; imports no models."""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from flask import Flask, current_app, has_app_context
from sqlalchemy import Connection, Engine, MetaData, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker

from app.instance import private_sqlite

log = logging.getLogger(__name__)
T = TypeVar("T")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The largest whole number every integer column takes: PostgreSQL's INTEGER is 32 bits
# (SQLite's 64), and a larger value in a query is a database error, not "no such row".
MAX_INTEGER = 2**31 - 1


class Base(DeclarativeBase):
    """Declarative base of every model."""

    metadata = MetaData(naming_convention=NAMING)


def _new_session() -> Session:
    maker: sessionmaker[Session] = current_app.extensions["db_sessionmaker"]
    return maker()


_app_numbers = itertools.count(1)


def _scope() -> tuple[int, int]:
    # A number given to the app at init, not id(app): a new app may reuse a dead one's id.
    return current_app.extensions["db_scope"], threading.get_ident()


class _PerAppScopedSession(scoped_session[Session]):
    """A scoped session per (app, thread): several apps in one process (tests, a CLI
    beside a server) never share a session or an engine."""

    def remove(self) -> None:
        """Close this thread's session of the current app (of every app, outside one)."""
        if has_app_context():
            super().remove()
            return
        registry: dict[tuple[int, int], Session] = self.registry.registry
        for key in [key for key in registry if key[1] == threading.get_ident()]:
            registry.pop(key).close()


# `db.session`: the current app's request-scoped session (views commit it).
session: scoped_session[Session] = _PerAppScopedSession(
    _new_session,  # type: ignore[arg-type]  # called like a sessionmaker, per app
    scopefunc=_scope,
)


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout; a server
    database gets a pool of `pool_size` (+ `max_overflow`) connections per process."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(pool_size=pool_size, max_overflow=max_overflow)
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        SQLiteWriters(engine)
    else:
        _ping_when_idle(engine)
    return engine


# How long a writer queues for this process's write lock before it goes on regardless
# (and meets SQLite's own busy timeout, as a writer in another process does).
WRITE_QUEUE_S = 30.0
WRITE_SLOW_S = 5.0  # a wait this long is logged: a transaction held open that long is a bug
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "REPLAC"})  # first six letters


class SQLiteWriters:
    """One connection of this engine writes at a time; the others queue on a lock.

    SQLite allows one writer per database. A second writer meets SQLITE_BUSY, and its busy
    handler sleeps 1, 2, 5, 10 ... ms between tries until the first one committed. Under
    load those sleeps were most of the embedded run engine's tail (8 clients: INSERT p99
    35 ms, UPDATE max 117 ms for statements that take 0.05 ms; docs/performance.md).
    Queued on a lock taken before a transaction's first write and given back by its
    commit or rollback, the next writer goes the moment the first one is done. Readers
    (WAL) never wait; writers in other processes still meet SQLite's busy timeout.
    """

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self._holder: object | None = None  # the DBAPI connection writing now
        self._holder_thread = ""
        event.listen(engine, "before_cursor_execute", self._before_write)
        event.listen(engine, "close", self._after)
        event.listen(engine, "invalidate", lambda connection, *_: self._after(connection))
        dialect = engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(dbapi_connection: Any) -> None:
            try:
                commit(dbapi_connection)
            finally:
                self._after(dbapi_connection)

        def do_rollback(dbapi_connection: Any) -> None:
            try:
                rollback(dbapi_connection)
            finally:
                self._after(dbapi_connection)

        # This engine's own dialect instance: other engines are not touched.
        dialect.do_commit = do_commit  # type: ignore[method-assign]
        dialect.do_rollback = do_rollback  # type: ignore[method-assign]

    def _before_write(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        dbapi_connection = conn.connection.dbapi_connection
        if self._holder is dbapi_connection or statement.lstrip()[:6].upper() not in _WRITES:
            return
        if self._lock.acquire(timeout=WRITE_SLOW_S) or self._slow_acquire():
            self._holder = dbapi_connection
            self._holder_thread = threading.current_thread().name

    def _slow_acquire(self) -> bool:
        log.warning("a database write has waited %.0f s for thread %s to commit",
                    WRITE_SLOW_S, self._holder_thread)
        return self._lock.acquire(timeout=WRITE_QUEUE_S - WRITE_SLOW_S)

    def _after(self, connection: Any, *_: Any) -> None:
        # The pool's proxy (commits, resets) or the DBAPI connection itself (pool events).
        dbapi_connection = getattr(connection, "dbapi_connection", connection)
        if self._holder is dbapi_connection:
            self._holder = None
            self._lock.release()


# A pooled connection given back this recently is taken as alive; one idle for longer is
# pinged before use, and replaced if the server is gone (a restart, an idle timeout).
# SQLAlchemy's pool_pre_ping pings on every checkout: a round trip before each of a
# run's short transactions, about one in six of the cluster's database round trips.
PING_AFTER_IDLE_S = 1.0


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _idle_from_now(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool drops this connection and checks out another (a fresh one if need be).
            raise DisconnectionError(f"the database connection was lost: {error}") from error


# How long work that must not be lost (a run's outcome, its call-log rows) is tried again
# while the database cannot be reached: a restart or a failover takes seconds to a minute.
UNREACHABLE_RETRY_S = 120.0


# What SQLite says, among its OperationalErrors ("no such table" is one too), when only
# another writer stood in the way.
_SQLITE_BUSY = ("database is locked", "database table is locked")


def unreachable(error: BaseException) -> bool:
    """Whether a database error says the database could not be reached or gave up on the
    statement for reasons of its own (a restart, a cut connection, refused connections, a
    lock or a statement timeout), not that the statement was wrong: the same work may be
    tried again once it answers."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if isinstance(error.orig, sqlite3.Error):
        return str(error.orig).startswith(_SQLITE_BUSY)
    # PostgreSQL's driver keeps OperationalError for the server's state, not the statement.
    return isinstance(error, (OperationalError, InterfaceError))


def until_reachable(work: Callable[[], T], *, what: str, within_s: float | None = None) -> T:
    """`work()`, tried again while the database cannot be reached (`unreachable`), waiting
    0.25 s, then twice as long each time up to 2 s, for up to `within_s` seconds in all
    (UNREACHABLE_RETRY_S unless given); then its last error. `work` must be safe to
    repeat: a statement whose commit was lost with the connection may have been applied."""
    deadline = time.monotonic() + (UNREACHABLE_RETRY_S if within_s is None else within_s)
    pause, tries = 0.25, 0
    while True:
        try:
            done = work()
        except DBAPIError as error:
            if not unreachable(error) or time.monotonic() + pause > deadline:
                raise
            if not tries:
                log.warning("%s waits for the database, which cannot be reached (%s)",
                            what, type(error.orig).__name__)
        else:
            if tries:
                log.info("%s went through after %d tries", what, tries + 1)
            return done
        tries += 1
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


def init_app(app: Flask) -> None:
    """Bind the session to this app's engine and remove it after each request."""
    private_sqlite(app.config["DATABASE_URL"])
    engine = make_engine(
        app.config["DATABASE_URL"],
        pool_size=int(app.config["DATABASE_POOL_SIZE"]),
        max_overflow=int(app.config["DATABASE_MAX_OVERFLOW"]),
    )
    app.extensions["db_sessionmaker"] = sessionmaker(expire_on_commit=False)
    app.extensions["db_readers"] = sessionmaker(expire_on_commit=False)
    _use_engine(app, engine)
    app.extensions["db_scope"] = next(_app_numbers)

    @app.teardown_appcontext
    def _remove_session(_exc: BaseException | None) -> None:
        session.remove()


# Connections a process may need at once besides one per request thread: the beat, the
# call-log writer, the sweep and a run's driver or broker.
BACKGROUND_CONNECTIONS = 4


def fit_pool(app: Flask, *, threads: int) -> int:
    """Let a server database's pool grow to one connection per thread plus the background
    ones (overflow connections close once idle), so busy threads never queue for one;
    drops the connections made so far (a forked server must not share them). Returns
    the pool's ceiling per process (0 for SQLite, which has no pool to size)."""
    engine = engine_of(app)
    engine.dispose()
    url = str(app.config["DATABASE_URL"])
    if url.startswith("sqlite"):
        return 0
    size = int(app.config["DATABASE_POOL_SIZE"])
    configured = int(app.config["DATABASE_MAX_OVERFLOW"])
    overflow = max(configured, threads + BACKGROUND_CONNECTIONS - size)
    if overflow != configured:
        app.config["DATABASE_MAX_OVERFLOW"] = overflow
        fitted = make_engine(url, pool_size=size, max_overflow=overflow)
        _use_engine(app, fitted)
    return size + overflow


def engine_of(app: Flask) -> Engine:
    """The app's engine."""
    engine: Engine = app.extensions["db_engine"]
    return engine


def one_statement(app: Flask) -> AbstractContextManager[Connection]:
    """A connection for one writing statement, committed as it runs: on a server database
    in autocommit (no BEGIN and COMMIT round trips around it). SQLite gets a transaction:
    its writers queue on a lock that a commit gives back (`SQLiteWriters`)."""
    if engine_of(app).dialect.name == "sqlite":
        return engine_of(app).begin()
    return autocommit_engine(app).connect()


def autocommit_engine(app: Flask) -> Engine:
    """The app's engine (the same pool) with each statement committed on its own: no BEGIN
    and COMMIT (or ROLLBACK) around it, two of a short read's three round trips to a
    server database. For reads, and for a write that is one statement on its own."""
    engine: Engine = app.extensions["db_autocommit_engine"]
    return engine


def read_session_factory(app: Flask) -> sessionmaker[Session]:
    """Short-lived sessions on `autocommit_engine`, for lookups that write nothing."""
    factory: sessionmaker[Session] = app.extensions["db_readers"]
    return factory


def _use_engine(app: Flask, engine: Engine) -> None:
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")  # the same pool
    app.extensions.update(db_engine=engine, db_autocommit_engine=autocommit)
    app.extensions["db_sessionmaker"].configure(bind=engine)
    app.extensions["db_readers"].configure(bind=autocommit)


def session_factory(app: Flask) -> sessionmaker[Session]:
    """Short-lived sessions for background threads (runs, brokers); callers commit."""
    factory: sessionmaker[Session] = app.extensions["db_sessionmaker"]
    return factory
