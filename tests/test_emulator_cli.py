"""``python -m streamrun_async.testing`` serves until Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp


async def test_serves_until_interrupted() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "streamrun_async.testing", "--port", "0", "--api-key", "k", "--envelopes"),
        *("--idle-timeout", "none", "--configurations", "3"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        key_line = (await process.stdout.readline()).decode()
        base = banner.split(" on ", 1)[1].strip()
        assert base.startswith("http://127.0.0.1:")
        assert base.endswith("/api/v1")
        assert key_line.strip() == "API key: k"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{base}/configurations", headers={"Authorization": "Bearer k"}) as r,
        ):
            assert len((await r.json())["configurations"]) == 3
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    assert stderr == b""
