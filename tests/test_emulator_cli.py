"""The one emulator command: ``python -m streamrun_async.testing`` and ``streamrun emulator``
take the same options and print a base URL that ``--base-url`` takes, with export lines."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from click.testing import CliRunner

import streamrun_async as sr
from streamrun_async.cli._app import cli
from streamrun_async.testing._command import main

MODULE = ("-m", "streamrun_async.testing")
CLI = ("-m", "streamrun_async.cli", "emulator")
ENTRY_POINTS = pytest.mark.parametrize("command", [MODULE, CLI], ids=["python-m", "streamrun"])


class Served:
    """An emulator process; ``line()`` reads its stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self) -> str:
        assert self.process.stdout is not None
        return (await asyncio.wait_for(self.process.stdout.readline(), 30)).decode().rstrip("\n")

    async def interrupt(self) -> str:
        """Ctrl-C; returns stderr."""
        self.process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(self.process.communicate(), 30)
        return stderr.decode()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Served]]]:
    started: list[Served] = []

    async def start(*args: str) -> Served:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        served = Served(process)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.process.returncode is None:
            served.process.kill()
            await served.process.wait()


@ENTRY_POINTS
async def test_banner_is_a_base_url_and_export_lines(
    serve: Callable[..., Awaitable[Served]], command: tuple[str, ...]
) -> None:
    served = await serve(
        *command, "--port", "0", "--api-key", "k-123", "--dialect", "paginated_field",
        "--configurations", "3", "--idle-timeout", "none", "--boot-time", "0",
    )  # fmt: skip
    banner = [await served.line() for _ in range(5)]
    url = (
        banner[0].removeprefix("Streamrun emulator on ").removesuffix(" (dialect paginated_field)")
    )
    assert url.startswith("http://127.0.0.1:")
    assert not url.endswith("/api/v1")
    assert banner[1:3] == [f"export STREAMRUN_BASE_URL={url}", "export STREAMRUN_API_KEY=k-123"]
    assert banner[4] == "Ctrl-C to stop."
    # What the export lines say is exactly what the SDK takes.
    async with sr.StreamrunClient(api_key="k-123", base_url=url) as client:
        configurations = await client.configurations.list()  # two pages of two
    assert len(configurations) == 3
    stderr = await served.interrupt()
    assert served.process.returncode == 0
    assert stderr == "emulator stopped; its instances ended with it\n"


@ENTRY_POINTS
async def test_json_line(serve: Callable[..., Awaitable[Served]], command: tuple[str, ...]) -> None:
    served = await serve(*command, "--port", "0", "--json", "--seed", "4")
    info = json.loads(await served.line())
    assert set(info) == {"url", "api_key", "dialect", "configuration_ids", "destination_ids"}
    assert info["dialect"] == "observed"
    assert len(info["configuration_ids"]) == 4
    async with sr.StreamrunClient(api_key=info["api_key"], base_url=info["url"]) as client:
        assert [c.id for c in await client.configurations.list()] == info["configuration_ids"]
    await served.interrupt()
    assert served.process.returncode == 0


async def test_the_global_json_option_of_streamrun(
    serve: Callable[..., Awaitable[Served]],
) -> None:
    served = await serve("-m", "streamrun_async.cli", "--json", "emulator", "--port", "0")
    assert json.loads(await served.line())["url"].startswith("http://127.0.0.1:")
    await served.interrupt()


async def test_virtual_clock_moves_by_stdin(serve: Callable[..., Awaitable[Served]]) -> None:
    served = await serve(
        *MODULE, "--port", "0", "--json", "--clock", "virtual", "--boot-time", "30"
    )
    info = json.loads(await served.line())
    async with sr.StreamrunClient(api_key=info["api_key"], base_url=info["url"]) as client:
        request = await client.configurations.launch(info["configuration_ids"][0])
        assert isinstance(request, sr.InstanceRequest)
        await asyncio.sleep(0.2)  # real time passes; emulator time does not
        assert (await client.instance_requests.get(request.id)).state is sr.InstanceState.QUEUED
        assert served.process.stdin is not None
        served.process.stdin.write(b"nonsense\nadvance nan\nadvance -1\nadvance 30\n")
        await served.process.stdin.drain()
        for _ in range(200):
            if (await client.instance_requests.get(request.id)).state is sr.InstanceState.RUNNING:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("advance 30 did not boot the instance")
    stderr = await served.interrupt()
    assert "ignored 'nonsense': say 'advance SECONDS'" in stderr
    assert "ignored 'advance nan'" in stderr  # a clock at nan would break every answer
    assert "ignored 'advance -1'" in stderr


def module_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``python -m streamrun_async.testing ARGS`` in this process: (exit code, out, err)."""
    with pytest.raises(SystemExit) as ended:
        main(args)
    out, err = capsys.readouterr()
    return int(ended.value.code or 0), out, err


def cli_main(args: list[str]) -> tuple[int, str, str]:
    """``streamrun emulator ARGS`` through click's runner: (exit code, out, err)."""
    result = CliRunner().invoke(cli, ["emulator", *args])
    return result.exit_code, result.stdout, result.stderr


def test_both_commands_take_the_same_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, module, _ = module_main(["--help"], capsys)
    assert code == 0
    cli_code, from_cli, _ = cli_main(["--help"])
    assert cli_code == 0
    assert "--dialect NAME" in module
    assert "paginated_link" in module
    options = ("--host", "--port", "--api-key", "--clock", "--capacity", "--boot-time", "--seed")
    assert all(option in module for option in options)
    normalised = from_cli.replace("streamrun emulator", "python -m streamrun_async.testing")
    assert " ".join(normalised.split()) == " ".join(module.split())


@pytest.mark.parametrize(
    "bad",
    [
        ["--dialect", "nope"],
        ["--capacity", "0"],
        ["--fail-rate", "2"],
        ["--clock", "x"],
        ["--boot-time", "nan"],
        ["--boot-jitter", "inf"],
    ],
)
def test_bad_options_are_usage_errors(capsys: pytest.CaptureFixture[str], bad: list[str]) -> None:
    code, _, err = module_main(bad, capsys)
    cli_code, _, cli_err = cli_main(bad)
    assert code == cli_code == 2
    assert "error: argument" in err
    normalised = err.replace("python -m streamrun_async.testing", "streamrun emulator")
    assert " ".join(normalised.split()) == " ".join(cli_err.split())


def test_a_busy_port_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        code, _, err = module_main(["--port", port], capsys)
        cli_code, _, cli_err = cli_main(["--port", port])
    assert code == cli_code == 1
    assert err == cli_err
    assert err.startswith("error: cannot listen:")
    assert "Traceback" not in err
