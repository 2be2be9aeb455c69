"""A static JSON server in its own process: emulator-shaped instance lists, pre-rendered.

The bodies are rendered once at start, so the server spends as little as possible per
request and the client side's cost shows in full (the strictest setting for an overhead
ratio). Run as ``python -m benchmarks._server --instances 100``: it prints ``READY <port>``
and serves on 127.0.0.1 until terminated.

Routes: ``GET /api/v1/instances`` and ``GET /api/v1/configurations/{id}/instances``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

from aiohttp import web

from ._fixtures import configuration_id, instances_body, instances_json

__all__ = ["serve_static"]


def _app(count: int, configurations: int, state: str, observed: bool) -> web.Application:
    instances = instances_json(count, configurations=configurations, state=state, observed=observed)
    everything = instances_body(instances)
    by_config = {
        configuration_id(c): instances_body(
            [i for i in instances if i["configurationId"] == configuration_id(c)]
        )
        for c in range(configurations)
    }

    async def list_all(request: web.Request) -> web.Response:
        return web.Response(body=everything, content_type="application/json")

    async def list_config(request: web.Request) -> web.Response:
        body = by_config.get(request.match_info["cfg"])
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v1/instances", list_all)
    app.router.add_get("/api/v1/configurations/{cfg}/instances", list_config)
    return app


async def _serve(count: int, configurations: int, state: str, observed: bool) -> None:
    runner = web.AppRunner(_app(count, configurations, state, observed), access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    print(f"READY {sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def serve_static(
    instances: int, *, configurations: int = 1, state: str = "QUEUED", observed: bool = False
) -> Iterator[str]:
    """Start the server in a child process; yield its base URL; stop it on exit.

    ``observed``: list items carry the fields of the observed dialect the SDK does not model.
    """
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks._server",
            f"--instances={instances}",
            f"--configurations={configurations}",
            f"--state={state}",
            *(["--observed"] if observed else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"the static server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--configurations", type=int, default=1)
    parser.add_argument("--state", default="QUEUED")
    parser.add_argument("--observed", action="store_true")
    args = parser.parse_args()
    asyncio.run(_serve(args.instances, args.configurations, args.state, args.observed))


if __name__ == "__main__":
    main()
