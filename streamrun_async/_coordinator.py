"""Coordinators: make ``launch_many``'s list-launch-confirm of a name exclusive beyond one client.

A client alone guarantees one launch per (configuration, name) among its own calls. Two
processes (two bot shards, a bot and the CLI) each list, each find nothing and each launch,
unless they hold the same lock while they list, launch and confirm that the launch shows
in the list. A coordinator is that lock:

- :class:`FileCoordinator`: OS file locks (``flock``) in a directory; processes of one host.
  A process that dies releases its locks at once (the kernel does it).
- :class:`RedisCoordinator`: one Redis key per name, set with an expiry and a random token
  (redis-py's ``Lock``); processes on many hosts. A holder that died blocks the others
  until the key expires (``lease`` seconds); a live holder never keeps it that long,
  because ``launch_many`` bounds its locked work below the lease.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._exceptions import InvalidArgumentError, InvalidArgumentTypeError, StreamrunError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Coordinator", "CoordinatorError", "FileCoordinator", "LockKey", "RedisCoordinator"]

_log = logging.getLogger("streamrun_async")

LockKey = tuple[str, str]
"""``(configuration_id, instance name)``: what one lock makes exclusive."""

# Waiting for a held lock: retry with growing pauses up to this many seconds.
_POLL_MIN = 0.005
_POLL_MAX = 0.1
# Connections of a RedisCoordinator's own pool (lock calls are short).
_REDIS_CONNECTIONS = 16


class CoordinatorError(StreamrunError):
    """The coordinator could not take its locks (Redis unreachable, a directory not
    writable): nothing was launched for the names it was to guard."""


def _digest(key: LockKey) -> str:
    # A name may hold any character: a hash makes a safe file or key name of it.
    configuration_id, name = key
    return hashlib.sha256(f"{configuration_id}\0{name}".encode()).hexdigest()


def _ordered(keys: Iterable[LockKey]) -> list[LockKey]:
    # Every holder takes its locks in the same order, so two never wait on each other.
    return sorted(set(keys))


class Coordinator(abc.ABC):
    """A lock service for ``StreamrunClient(coordinator=...)``.

    ``hold(keys)`` is an async context manager that returns once every key is held by
    this caller alone, and releases them all when it exits, on every path. ``lease`` is
    how long a lock outlives a holder that died (None: it never does, the OS frees it).
    """

    lease: float | None

    @abc.abstractmethod
    def hold(self, keys: Iterable[LockKey]) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the locks of ``keys`` (all of them) for the ``async with`` block."""

    async def aclose(self) -> None:  # noqa: B027 (a coordinator may have nothing to close)
        """Release what the coordinator holds open (connections); idempotent."""


class FileCoordinator(Coordinator):
    """Locks as files in ``directory``, one per (configuration, name), held with ``flock``.

    Every process of one host that passes the same directory takes turns for a name. The
    locks are released when the block ends, or by the kernel when the process dies; a
    network file system may not honour ``flock``: keep the directory on a local disk.
    File calls run in a worker thread, never on the event loop.
    """

    lease = None

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        if not isinstance(directory, (str, os.PathLike)):
            raise InvalidArgumentTypeError("directory must be a path")
        self.directory = Path(directory)
        # Own threads: a slow disk must not hold up the loop's default executor (DNS).
        self._threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="streamrun-lock")

    def __repr__(self) -> str:
        return f"<FileCoordinator {str(self.directory)!r}>"

    def _try_lock(self, key: LockKey) -> int | None:
        """Open the key's file and try to lock it without waiting: its fd, or None."""
        path = self.directory / f"{_digest(key)}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            # The directory is made once, when missing, not on every attempt.
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EAGAIN, errno.EACCES):
                return None
            raise
        return fd

    async def _acquire(self, key: LockKey) -> int:
        loop = asyncio.get_running_loop()
        pause = _POLL_MIN
        while True:
            attempt = loop.run_in_executor(self._threads, self._try_lock, key)
            try:
                fd = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                # The thread may still take the lock: give it back as soon as it does.
                attempt.add_done_callback(_close_fd)
                raise
            if fd is not None:
                return fd
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX)

    @contextlib.asynccontextmanager
    async def hold(self, keys: Iterable[LockKey]) -> AsyncIterator[None]:
        """Hold every key's file lock for the block (taken in one order, never nested)."""
        held: list[int] = []
        try:
            for key in _ordered(keys):
                held.append(await self._acquire(key))
            yield
        finally:
            for fd in held:
                os.close(fd)  # closing the last descriptor releases the flock

    async def aclose(self) -> None:
        """Stop the worker threads."""
        self._threads.shutdown(wait=False)


def _close_fd(attempt: asyncio.Future[int | None]) -> None:
    if not attempt.cancelled() and attempt.exception() is None:
        fd = attempt.result()
        if fd is not None:
            os.close(fd)


class RedisCoordinator(Coordinator):
    """Locks as Redis keys, one per (configuration, name), for processes on many hosts.

    ``url``: a ``redis://`` URL (or pass your own ``redis.asyncio.Redis`` as ``client``).
    Each lock is a key set only if absent, with a random token and an expiry of ``lease``
    seconds, and deleted only by the holder of its token. Needs ``pip install
    streamrun-async[redis]``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | None = None,
        lease: float = 120.0,
        prefix: str = "streamrun:launch:",
    ) -> None:
        try:
            import redis.asyncio
        except ImportError as error:  # pragma: no cover - the test extra installs it
            raise ImportError(
                "RedisCoordinator needs redis-py: pip install 'streamrun-async[redis]'"
            ) from error
        if (url is None) == (client is None):
            raise InvalidArgumentError("pass exactly one of url= and client=")
        if url is not None and not isinstance(url, str):
            raise InvalidArgumentTypeError("url must be a str")
        if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not lease > 0:
            raise InvalidArgumentError(f"lease must be positive seconds, got {lease!r}")
        self.lease: float = float(lease)
        self.prefix = prefix
        self._owns_client = client is None
        if client is None:
            # A blocking pool: a burst of lock calls waits for a connection instead of
            # failing with "Too many connections" (a failed release would hold the name
            # until the lease ends).
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                url or "", max_connections=_REDIS_CONNECTIONS, timeout=None
            )
            client = redis.asyncio.Redis(connection_pool=pool)
        self._redis: Redis = client

    def __repr__(self) -> str:
        # The URL may carry a password: never shown.
        return f"<RedisCoordinator lease={self.lease:g}s prefix={self.prefix!r}>"

    async def _acquire(self, key: LockKey) -> Any:
        lock = self._redis.lock(self.prefix + _digest(key), timeout=self.lease, sleep=_POLL_MAX / 2)
        token = secrets.token_hex(16)
        try:
            await lock.acquire(token=token)
        except BaseException:
            # Cancelled or cut off after Redis may have set the key: free it by its token.
            await asyncio.shield(_release(lock, token.encode()))
            raise
        return lock

    @contextlib.asynccontextmanager
    async def hold(self, keys: Iterable[LockKey]) -> AsyncIterator[None]:
        """Hold every key's lock for the block (taken in one order, never nested); each
        lock enters the block with its whole lease."""
        loop = asyncio.get_running_loop()
        held: list[Any] = []
        try:
            for key in _ordered(keys):
                held.append(await self._acquire(key))
                if len(held) == 1:
                    first_taken = loop.time()
            if len(held) > 1 and loop.time() - first_taken >= _POLL_MAX / 2:
                # A later key made us wait: the earlier ones' leases ran meanwhile, and
                # the holder's work is budgeted against a whole lease. Renew them (a lock
                # that expired meanwhile may be another's now: that raises, nothing done).
                for lock in held[:-1]:
                    await lock.reacquire()
            yield
        finally:
            await asyncio.shield(_release_all(held))

    async def aclose(self) -> None:
        """Close the Redis connection pool (only one this coordinator made)."""
        if self._owns_client:
            await self._redis.aclose(close_connection_pool=True)


async def _release_all(locks: list[Any]) -> None:
    for lock in reversed(locks):
        await _release(lock, lock.local.token)


async def _release(lock: Any, token: bytes | None) -> None:
    from redis.exceptions import LockError, RedisError

    if token is None:
        return
    try:
        # An expired lock may now be another holder's: do_release deletes it only if
        # the token is still ours, and says so when it is not (nothing more to do then).
        await lock.do_release(token)
    except LockError:
        pass
    except RedisError as error:
        # Unreachable now: the key's expiry frees it. Raising here would hide the
        # outcome of the launch the lock guarded.
        _log.warning("could not release a launch lock (%s); it expires by itself", error)
