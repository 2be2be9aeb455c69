"""``streamrun emulator``: the emulator command of ``python -m streamrun_async.testing``.

Its arguments go to that command's parser untouched, so both take the same options and
print the same banner; ``streamrun emulator --help`` shows them.
"""

from __future__ import annotations

import click

from ._runtime import Runtime

__all__ = ["emulator"]


@click.command(
    add_help_option=False,  # --help goes to the shared parser, which knows the options
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def emulator(rt: Runtime, args: tuple[str, ...]) -> None:
    """Serve a local Streamrun emulator until Ctrl-C (options: streamrun emulator --help).

    It prints the base URL to pass as --base-url and export lines for STREAMRUN_BASE_URL
    and STREAMRUN_API_KEY: a throwaway key made for this run, the only key the CLI prints.
    """
    # Imported only here: aiohttp.web costs start-up time the other commands never need.
    from streamrun_async.testing._command import main

    main(args, prog="streamrun emulator", json_output=rt.json_output)
