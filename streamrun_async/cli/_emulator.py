"""``streamrun emulator``: serve the embedded Streamrun emulator until Ctrl-C."""

from __future__ import annotations

import asyncio

import click

from ._runtime import Runtime, json_option

__all__ = ["emulator"]


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8787,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--boot-time",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    metavar="S",
    help="Seconds from QUEUED to RUNNING.",
)
@click.option(
    "--boot-jitter",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    metavar="S",
    help="Up to this many more seconds, at random.",
)
@click.option(
    "--capacity",
    type=click.IntRange(min=1),
    help="Servers instances run on; the rest stay QUEUED (default: unlimited).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of ids and jitter.")
@json_option
@click.pass_obj
def emulator(
    rt: Runtime,
    port: int,
    host: str,
    boot_time: float,
    boot_jitter: float,
    capacity: int | None,
    seed: int,
) -> None:
    """Serve a local Streamrun emulator until Ctrl-C.

    It prints its URL and its API key: a throwaway key made for this run, which is
    the only key the CLI ever prints.
    """
    # Imported only here: aiohttp.web costs start-up time the other commands never need.
    from streamrun_async.testing import Emulator

    server = Emulator(
        host=host,
        port=port,
        clock="real",
        boot_time=boot_time,
        boot_jitter=boot_jitter,
        capacity=capacity,
        seed=seed,
    )
    rt.interrupt_note = lambda: "emulator stopped; its instances ended with it"

    async def main() -> None:
        try:
            await server.start()
        except OSError as error:
            rt.fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
        try:
            if rt.json_output:
                rt.print_json_line(
                    {
                        "url": server.url,
                        "api_key": server.api_key,
                        "configuration_ids": list(server.configuration_ids),
                        "destination_ids": list(server.destination_ids),
                    }
                )
            else:
                key = server.api_key
                click.echo(f"Streamrun emulator listening on {server.url}")
                click.echo("For the CLI:")
                click.echo(f"  export STREAMRUN_BASE_URL={server.url}")
                click.echo(f"  export STREAMRUN_API_KEY={key}")
                click.echo("  streamrun configurations list")
                click.echo(f'In Python: StreamrunClient("{key}", base_url="{server.url}")')
                click.echo("Ctrl-C to stop.")
            await asyncio.Event().wait()
        finally:
            await server.close()

    # Ctrl-C is how a server is meant to end: exit 0.
    rt.run(main, interrupted_exit=0)
