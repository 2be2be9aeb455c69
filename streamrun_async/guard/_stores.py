"""Where leases live: SQLite on one host, Redis across hosts.

Every write is finished (committed to disk, or acknowledged by Redis) before the call
returns, because the guard sends a launch only once its leases are written.
"""

from __future__ import annotations

import abc
import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from .._exceptions import InvalidArgumentError, InvalidArgumentTypeError
from ._errors import LeaseStoreCorruptError, LeaseStoreError, LeaseStorePathError
from ._lease import Lease

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["LeaseStore", "RedisLeaseStore", "SQLiteLeaseStore", "default_store_path"]

_T = TypeVar("_T")
_SCHEMA = "streamrun-leases/1"
# How long a write waits for another process's lock before the store reports it locked.
_LOCK_TIMEOUT = 5.0


def default_store_path() -> Path:
    """``$XDG_STATE_HOME/streamrun/leases.sqlite3`` (``~/.local/state`` when unset)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "streamrun" / "leases.sqlite3"


class LeaseStore(abc.ABC):
    """The storage of leases, shared by every process of every owner that uses it."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """The file or URL of the store, for messages (never a password)."""

    @abc.abstractmethod
    async def put(self, leases: Sequence[Lease]) -> None:
        """Write (insert or replace) these leases, all or none, durably."""

    @abc.abstractmethod
    async def delete(self, leases: Sequence[Lease]) -> None:
        """Remove these leases (absent ones are ignored)."""

    @abc.abstractmethod
    async def leases(self, owner: str | None = None) -> list[Lease]:
        """The leases of ``owner`` (of every owner when None), oldest first."""

    @abc.abstractmethod
    async def owners(self) -> set[str]:
        """Every owner that ever used this store."""

    @abc.abstractmethod
    async def add_owner(self, owner: str) -> None:
        """Record that ``owner`` uses this store."""

    async def aclose(self) -> None:  # noqa: B027 - a store may have nothing to close
        """Release connections; the store can be used again afterwards."""


def _sorted(leases: list[Lease]) -> list[Lease]:
    return sorted(leases, key=lambda lease: (lease.created_at, lease.id))


class SQLiteLeaseStore(LeaseStore):
    """Leases in an SQLite file (stdlib ``sqlite3``, run off the event loop).

    ``SQLiteLeaseStore()`` uses :func:`default_store_path`. The file's directory is created
    at once (``LeaseStorePathError`` if it cannot be); a file that is not a lease store
    raises ``LeaseStoreCorruptError``, a lock held too long ``LeaseStoreError``, both naming
    the file. Several processes may share the file.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise InvalidArgumentTypeError(f"path must be a str or a path, got {path!r}")
        self._path = Path(path) if path is not None else default_store_path()
        if not str(path if path is not None else self._path).strip():
            raise InvalidArgumentError("path must not be empty")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LeaseStorePathError(
                f"cannot create the lease store's directory {str(self._path.parent)!r}: "
                f"{exc.strerror or exc}",
                path=str(self._path),
            ) from None
        if self._path.is_dir():
            raise LeaseStorePathError(
                f"the lease store {str(self._path)!r} is a directory", path=str(self._path)
            )
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"<SQLiteLeaseStore {str(self._path)!r}>"

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._path

    @property
    def location(self) -> str:
        """The SQLite file, as text."""
        return str(self._path)

    # -- blocking parts, run in a worker thread ------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: every write below is one explicit transaction.
        conn = sqlite3.connect(
            self._path, timeout=_LOCK_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA synchronous=FULL")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            if not tables:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
                    " created REAL NOT NULL, body TEXT NOT NULL)"
                )
                conn.execute("CREATE INDEX IF NOT EXISTS leases_owner ON leases (owner)")
                conn.execute("CREATE TABLE IF NOT EXISTS owners (owner TEXT PRIMARY KEY)")
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (_SCHEMA,))
                conn.execute("COMMIT")
            if "meta" not in tables and tables:
                raise sqlite3.DatabaseError("the file holds another program's tables")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None or row[0] != _SCHEMA:
                raise sqlite3.DatabaseError("no streamrun lease schema")
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._connect()
                return work(self._connection)
            except sqlite3.OperationalError as exc:
                self._rollback()
                text = str(exc)
                if "locked" in text or "busy" in text:
                    raise LeaseStoreError(
                        f"the lease store {self.location!r} is locked by another process "
                        f"(waited {_LOCK_TIMEOUT:g}s)",
                        path=self.location,
                    ) from None
                raise LeaseStoreError(
                    f"the lease store {self.location!r} cannot be used: {text}", path=self.location
                ) from None
            except (sqlite3.DatabaseError, ValueError) as exc:
                self._rollback()
                raise LeaseStoreCorruptError(
                    f"the lease store {self.location!r} is not a readable lease store ({exc}); "
                    "move it away to start afresh",
                    path=self.location,
                ) from None

    def _rollback(self) -> None:
        if self._connection is not None and self._connection.in_transaction:
            self._connection.execute("ROLLBACK")

    def _put(self, conn: sqlite3.Connection, leases: Sequence[Lease]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?)",
            [(lease.id, lease.owner, lease.created_at, lease.to_json()) for lease in leases],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO owners VALUES (?)",
            [(owner,) for owner in {lease.owner for lease in leases}],
        )
        conn.execute("COMMIT")

    def _delete(self, conn: sqlite3.Connection, ids: list[str]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("DELETE FROM leases WHERE id = ?", [(i,) for i in ids])
        conn.execute("COMMIT")

    @staticmethod
    def _select(conn: sqlite3.Connection, owner: str | None) -> list[Lease]:
        if owner is None:
            rows = conn.execute("SELECT body FROM leases ORDER BY created, id")
        else:
            rows = conn.execute(
                "SELECT body FROM leases WHERE owner = ? ORDER BY created, id", (owner,)
            )
        return [Lease.from_json(row[0]) for row in rows]

    def _close(self) -> None:
        with self._lock:
            conn, self._connection = self._connection, None
            if conn is not None:
                conn.close()

    # -- the async interface -----------------------------------------------------------

    async def put(self, leases: Sequence[Lease]) -> None:
        """Write these leases in one transaction, synced to disk."""
        items = list(leases)
        await asyncio.to_thread(self._run, lambda conn: self._put(conn, items))

    async def delete(self, leases: Sequence[Lease]) -> None:
        """Remove these leases in one transaction."""
        ids = [lease.id for lease in leases]
        await asyncio.to_thread(self._run, lambda conn: self._delete(conn, ids))

    async def leases(self, owner: str | None = None) -> list[Lease]:
        """The leases of ``owner`` (all when None), oldest first."""
        return await asyncio.to_thread(self._run, lambda conn: self._select(conn, owner))

    async def owners(self) -> set[str]:
        """Every owner recorded in this file."""

        def select(conn: sqlite3.Connection) -> set[str]:
            return {row[0] for row in conn.execute("SELECT owner FROM owners")}

        return await asyncio.to_thread(self._run, select)

    async def add_owner(self, owner: str) -> None:
        """Record the owner (idempotent)."""

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR IGNORE INTO owners VALUES (?)", (owner,))

        await asyncio.to_thread(self._run, insert)

    async def aclose(self) -> None:
        """Close the connection (reopened on next use)."""
        await asyncio.to_thread(self._close)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


class RedisLeaseStore(LeaseStore):
    """Leases in Redis, for bots on several hosts (``pip install streamrun-async[redis]``).

    ``RedisLeaseStore("redis://localhost:6379/0")``. Keys start with ``prefix``. A write
    returns once Redis acknowledged it; whether it survives a crash of Redis itself is
    up to the server's persistence (``appendonly yes``, ``appendfsync always``).
    """

    def __init__(self, url: str, *, prefix: str = "streamrun") -> None:
        if not isinstance(url, str) or not isinstance(prefix, str):
            raise InvalidArgumentTypeError("url and prefix must be str")
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise InvalidArgumentError(
                f"url must be a redis://, rediss:// or unix:// URL, got {_redacted(url)!r}"
            )
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            raise ModuleNotFoundError(
                "RedisLeaseStore needs redis-py: pip install 'streamrun-async[redis]'"
            ) from None
        self._url = url
        self._prefix = prefix

    def __repr__(self) -> str:
        return f"<RedisLeaseStore {self.location!r}>"

    @property
    def location(self) -> str:
        """The Redis URL, its password masked."""
        return _redacted(self._url)

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def _call(self, work: Callable[[Redis], Any]) -> Any:
        from redis.asyncio import Redis
        from redis.exceptions import RedisError

        # A connection per call: the store is used a few times per launch and per reaping
        # round, and a pool kept between calls would belong to one event loop (a client
        # used again under a second asyncio.run would inherit dead connections).
        try:
            async with Redis.from_url(self._url) as redis:
                return await work(redis)
        except RedisError as exc:
            raise LeaseStoreError(
                f"the lease store {self.location!r} cannot be used: {exc}", path=self.location
            ) from None

    async def put(self, leases: Sequence[Lease]) -> None:
        """Write these leases in one MULTI/EXEC transaction."""

        async def work(redis: Redis) -> None:
            async with redis.pipeline(transaction=True) as pipe:
                for lease in leases:
                    pipe.set(self._key("lease", lease.id), lease.to_json())
                    pipe.sadd(self._key("owner", lease.owner), lease.id)
                    pipe.sadd(self._key("owners"), lease.owner)
                await pipe.execute()

        await self._call(work)

    async def delete(self, leases: Sequence[Lease]) -> None:
        """Remove these leases in one transaction."""

        async def work(redis: Redis) -> None:
            async with redis.pipeline(transaction=True) as pipe:
                for lease in leases:
                    pipe.delete(self._key("lease", lease.id))
                    pipe.srem(self._key("owner", lease.owner), lease.id)
                await pipe.execute()

        if leases:
            await self._call(work)

    async def leases(self, owner: str | None = None) -> list[Lease]:
        """The leases of ``owner`` (all when None), oldest first."""

        async def work(redis: Redis) -> list[Lease]:
            owners = [owner] if owner is not None else await self._owner_names(redis)
            found: list[Lease] = []
            for name in owners:
                ids = sorted(_text(m) for m in await redis.smembers(self._key("owner", name)))
                if not ids:
                    continue
                bodies = await redis.mget([self._key("lease", i) for i in ids])
                for lease_id, body in zip(ids, bodies, strict=True):
                    if body is None:  # deleted between the two reads
                        continue
                    try:
                        found.append(Lease.from_json(body))
                    except ValueError as exc:
                        raise LeaseStoreCorruptError(
                            f"the lease store {self.location!r} holds an unreadable lease "
                            f"{self._key('lease', lease_id)!r} ({exc})",
                            path=self.location,
                        ) from None
            return _sorted(found)

        result: list[Lease] = await self._call(work)
        return result

    async def _owner_names(self, redis: Redis) -> list[str]:
        return sorted(_text(m) for m in await redis.smembers(self._key("owners")))

    async def owners(self) -> set[str]:
        """Every owner recorded under this prefix."""
        names: list[str] = await self._call(self._owner_names)
        return set(names)

    async def add_owner(self, owner: str) -> None:
        """Record the owner (idempotent)."""
        await self._call(lambda redis: redis.sadd(self._key("owners"), owner))
