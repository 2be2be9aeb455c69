"""Leases and their stores: the model, validation, SQLite and Redis (a real redis-server)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from _redis_server import RedisServer, redis_server  # noqa: F401 - a fixture

import streamrun_async as sr
from streamrun_async.guard import (
    Lease,
    LeaseStore,
    check_owner,
    check_ttl,
    default_store_path,
    names_match,
)

T0 = 1_800_000_000.0


def lease(
    name: str | None = "cam-1", *, owner: str = "bot", ttl: float | None = 30.0, **kw: object
) -> Lease:
    fields: dict[str, object] = {
        "id": uuid.uuid4().hex,
        "owner": owner,
        "host": "h",
        "pid": 1,
        "configuration_id": "cfg-1",
        "name": name,
        "created_at": T0,
        "expires_at": None if ttl is None else T0 + ttl,
    }
    fields.update(kw)
    return Lease(**fields)  # type: ignore[arg-type]


# -- the model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [(None, None), (30, 30.0), (0.5, 0.5), (timedelta(minutes=2), 120.0)],
)
def test_ttl_accepts_positive_seconds_and_timedeltas(ttl: object, seconds: float | None) -> None:
    assert check_ttl(ttl) == seconds


@pytest.mark.parametrize("ttl", [0, -1, float("inf"), float("nan"), timedelta(0)])
def test_ttl_refuses_non_positive_durations(ttl: object) -> None:
    with pytest.raises(sr.InvalidArgumentError, match="ttl"):
        check_ttl(ttl)


@pytest.mark.parametrize("ttl", ["30", True, [30]])
def test_ttl_refuses_other_types(ttl: object) -> None:
    with pytest.raises(sr.InvalidArgumentTypeError):
        check_ttl(ttl)


@pytest.mark.parametrize("owner", ["", "two words", "tab\there", "x" * 129, "new\nline"])
def test_owner_must_be_one_printable_word(owner: str) -> None:
    with pytest.raises(sr.InvalidArgumentError, match="owner"):
        check_owner(owner)


def test_instance_settings_ttl_is_validated_and_never_sent() -> None:
    item = sr.InstanceSettings(name="cam-1", ttl=timedelta(seconds=90))
    assert item.ttl == 90.0
    assert item.to_json() == {"name": "cam-1", "overrides": {}}
    with pytest.raises(sr.InvalidArgumentError):
        sr.InstanceSettings(name="cam-1", ttl=-5)


def test_expiry_is_wall_time_stored_with_the_lease() -> None:
    held = lease(ttl=30)
    assert not held.expired(T0 + 29.999)
    assert held.expired(T0 + 30)
    assert held.remaining(T0 + 10) == 20
    assert held.remaining(T0 + 99) == 0
    forever = lease(ttl=None)
    assert not forever.expired(T0 + 10**9)
    assert forever.remaining(T0) is None


def test_a_lease_survives_its_json_and_refuses_garbage() -> None:
    held = lease(request_id="req-1", instance_id="i-1", seen_at=T0 + 3)
    assert Lease.from_json(held.to_json()) == held
    with pytest.raises(ValueError, match="not a lease"):
        Lease.from_json('{"id": "x"}')
    with pytest.raises(ValueError, match="JSON object"):
        Lease.from_json("[1, 2]")


def test_a_lease_of_an_older_version_without_optional_fields_reads() -> None:
    held = lease()
    text = held.to_json().replace(',"seen_at":null', "")
    assert "seen_at" not in text
    assert Lease.from_json(text) == held


@pytest.mark.parametrize(
    ("leased", "listed", "same"),
    [
        ("cam-1", "cam-1", True),
        ("Cam-One", "cam-one", True),  # a server that lower-cases names
        ("a-very-long-stream-name", "a-very-long-str", True),  # one that truncates them
        ("cam-1", "cam-10", False),
        ("cam-10", "cam-1", False),  # too short a prefix to be a truncation
        ("cam-1", None, False),
        ("cam-1", "", False),
    ],
)
def test_names_match_tolerates_case_and_truncation(
    leased: str, listed: str | None, same: bool
) -> None:
    assert names_match(leased, listed) is same


def test_the_default_store_lives_in_the_state_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_store_path() == tmp_path / "state" / "streamrun" / "leases.sqlite3"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_store_path() == tmp_path / ".local" / "state" / "streamrun" / "leases.sqlite3"
    store = sr.SQLiteLeaseStore()
    assert store.path.parent.is_dir()


# -- both stores, one suite ----------------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LeaseStore]:
    made: LeaseStore
    if request.param == "sqlite":
        made = sr.SQLiteLeaseStore(tmp_path / "leases.sqlite3")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        made = sr.RedisLeaseStore(server.url, prefix=f"t-{uuid.uuid4().hex}")
    yield made
    await made.aclose()


async def test_store_puts_lists_replaces_and_deletes(store: LeaseStore) -> None:
    first = lease("cam-1")
    second = lease("cam-2", created_at=T0 + 1)
    other = lease("cam-3", owner="other-bot")
    await store.put([second, first, other])
    assert await store.leases("bot") == [first, second]  # oldest first
    assert {held.id for held in await store.leases()} == {first.id, second.id, other.id}
    updated = Lease.from_json(first.to_json().replace('"instance_id":null', '"instance_id":"i-9"'))
    await store.put([updated])
    assert (await store.leases("bot"))[0].instance_id == "i-9"
    await store.delete([updated, lease("never-stored")])
    assert await store.leases("bot") == [second]


async def test_store_records_owners(store: LeaseStore) -> None:
    assert await store.owners() == set()
    await store.add_owner("bot")
    await store.add_owner("bot")
    await store.put([lease(owner="cron-bot")])
    assert await store.owners() == {"bot", "cron-bot"}


async def test_a_second_store_object_sees_the_writes(store: LeaseStore, tmp_path: Path) -> None:
    held = lease()
    await store.put([held])
    if isinstance(store, sr.SQLiteLeaseStore):
        again: LeaseStore = sr.SQLiteLeaseStore(store.path)
    else:
        assert isinstance(store, sr.RedisLeaseStore)
        again = sr.RedisLeaseStore(store._url, prefix=store._prefix)
    try:
        assert await again.leases("bot") == [held]
    finally:
        await again.aclose()


# -- SQLite faults ---------------------------------------------------------------------------


async def test_sqlite_write_is_durable_for_another_process_at_once(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite3"
    store = sr.SQLiteLeaseStore(path)
    held = lease()
    await store.put([held])
    # Another process (as `streamrun reap` from cron would be) reads it without us closing.
    code = (
        "import asyncio, sys, streamrun_async as sr\n"
        "s = sr.SQLiteLeaseStore(sys.argv[1])\n"
        "print([l.id for l in asyncio.run(s.leases('bot'))][0])\n"
    )
    reader = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(path), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await reader.communicate()
    assert reader.returncode == 0
    assert out.decode().strip() == held.id
    await store.aclose()


def test_sqlite_path_that_cannot_be_created_is_refused_at_once(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(sr.LeaseStorePathError, match="a-file") as caught:
        sr.SQLiteLeaseStore(blocker / "sub" / "leases.sqlite3")
    assert isinstance(caught.value, sr.InvalidArgumentError)
    with pytest.raises(sr.LeaseStorePathError, match="directory"):
        sr.SQLiteLeaseStore(tmp_path)


async def test_sqlite_corrupt_file_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite3"
    path.write_bytes(b"this is not an sqlite database at all" * 100)
    store = sr.SQLiteLeaseStore(path)
    with pytest.raises(sr.LeaseStoreCorruptError, match=r"leases\.sqlite3"):
        await store.put([lease()])
    await store.aclose()


async def test_sqlite_of_another_program_is_not_taken_for_a_lease_store(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE songs (title TEXT)")
    store = sr.SQLiteLeaseStore(path)
    with pytest.raises(sr.LeaseStoreCorruptError, match=r"other\.db"):
        await store.leases()
    await store.aclose()


async def test_sqlite_unreadable_lease_row_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite3"
    store = sr.SQLiteLeaseStore(path)
    await store.put([lease()])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE leases SET body = '{broken'")
    with pytest.raises(sr.LeaseStoreCorruptError, match=r"leases\.sqlite3"):
        await store.leases("bot")
    await store.aclose()


async def test_sqlite_locked_store_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamrun_async.guard import _stores

    monkeypatch.setattr(_stores, "_LOCK_TIMEOUT", 0.05)
    path = tmp_path / "leases.sqlite3"
    store = sr.SQLiteLeaseStore(path)
    await store.leases()  # creates the schema
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sr.LeaseStoreError, match="locked") as caught:
            await store.put([lease()])
        assert caught.value.path == str(path)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    await store.put([lease()])  # usable again once the lock is gone
    await store.aclose()


# -- Redis faults ----------------------------------------------------------------------------


async def test_redis_unreachable_is_a_clear_error_without_the_password() -> None:
    with socket_closed_port() as port:
        store = sr.RedisLeaseStore(f"redis://:hunter2@127.0.0.1:{port}/0")
        with pytest.raises(sr.LeaseStoreError) as caught:
            await store.put([lease()])
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in caught.value.path
    assert f"127.0.0.1:{port}" in str(caught.value)
    await store.aclose()


async def test_redis_unreadable_lease_is_corruption(request: pytest.FixtureRequest) -> None:
    import redis.asyncio as redis

    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"t-{uuid.uuid4().hex}"
    store = sr.RedisLeaseStore(server.url, prefix=prefix)
    held = lease()
    await store.put([held])
    raw = redis.Redis.from_url(server.url)
    await raw.set(f"{prefix}:lease:{held.id}", "{broken")
    await raw.aclose()
    with pytest.raises(sr.LeaseStoreCorruptError, match=held.id):
        await store.leases("bot")
    await store.aclose()


def test_redis_url_is_checked() -> None:
    with pytest.raises(sr.InvalidArgumentError, match="redis://"):
        sr.RedisLeaseStore("http://127.0.0.1:6379")


class socket_closed_port:
    """A loopback port on which nothing listens."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        return self.port

    def __exit__(self, *exc: object) -> None:
        return None


def test_concurrent_writers_from_threads_do_not_corrupt(tmp_path: Path) -> None:
    store = sr.SQLiteLeaseStore(tmp_path / "leases.sqlite3")

    async def main() -> int:
        await asyncio.gather(*(store.put([lease(f"cam-{n}")]) for n in range(40)))
        found = len(await store.leases("bot"))
        await store.aclose()
        return found

    assert asyncio.run(main()) == 40
    assert os.path.getsize(tmp_path / "leases.sqlite3") > 0
