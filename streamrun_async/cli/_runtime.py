"""What every command shares: the global options, the consoles and the async runner.

The runner is where the CLI's promises live: an API error is one line on stderr and exit
1, a bad argument is a usage error (exit 2), and Ctrl-C ends the command cleanly, saying
what it leaves running (exit 130).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from streamrun_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    InsecureTransportError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    MissingAPIKeyError,
    PollPolicy,
    StreamrunClient,
    StreamrunError,
)

from ._render import one_line, to_jsonable

__all__ = [
    "EXIT_API_ERROR",
    "EXIT_INTERRUPTED",
    "Runtime",
    "call",
    "describe_error",
    "json_option",
]

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])

EXIT_API_ERROR = 1
EXIT_INTERRUPTED = 130  # the shell's convention for "ended by SIGINT"
# Rich wraps to 80 columns when it cannot ask a terminal; logs and pipes read better wider.
_PLAIN_WIDTH = 120
_MAX_POLL_INTERVAL = 10.0


class Runtime:
    """The options of one ``streamrun`` invocation, shared by its command (``ctx.obj``)."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str,
        json_output: bool,
        poll_interval: float,
    ) -> None:
        # The key is kept only to hand to the client; nothing here prints it.
        self._api_key = api_key
        self.base_url = base_url
        self.json_output = json_output
        self.poll_interval = poll_interval
        self.out = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)
        for console in (self.out, self.err):
            if not console.is_terminal:
                console.width = _PLAIN_WIDTH
        self.interrupt_note: Callable[[], str] | None = None
        """Set by a command: what it leaves behind if Ctrl-C ends it now."""

    def __repr__(self) -> str:
        return f"<Runtime {self.base_url} json={self.json_output}>"

    def client(self) -> StreamrunClient:
        """A client from the global options. Make it inside the running loop."""
        interval = self.poll_interval
        poll = PollPolicy(
            min_interval=interval,
            # Waits slow down while nothing changes, but never below the asked interval.
            max_interval=max(interval, min(_MAX_POLL_INTERVAL, interval * 10)),
            # The budget must leave room for a list and a request fetch in each tick.
            requests_per_second=max(5.0, 2.0 / interval),
        )
        return StreamrunClient(api_key=self._api_key, base_url=self.base_url, poll=poll)

    # -- output -------------------------------------------------------------------

    def print_json(self, value: Any) -> None:
        """Write ``value`` as JSON on stdout (models become snake_case objects)."""
        click.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))

    def print_json_line(self, value: Any) -> None:
        """Write ``value`` as one compact JSON line on stdout (for streams)."""
        click.echo(json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":")))

    def show(self, value: _T, render: Callable[[_T], Any], empty: str | None = None) -> None:
        """``value`` as JSON with ``--json``, else rendered for people (or ``empty`` if so)."""
        if self.json_output:
            self.print_json(value)
        elif empty is not None and not value:
            self.note(empty)
        else:
            self.out.print(render(value))

    def note(self, message: str) -> None:
        """A remark for people, on stderr so stdout stays data."""
        click.echo(message, err=True)

    def error(self, message: str) -> None:
        """One ``error: ...`` line on stderr."""
        click.echo(f"error: {message}", err=True)

    def fail(self, message: str, code: int = EXIT_API_ERROR) -> NoReturn:
        """Print one error line and end the command with ``code``."""
        self.error(message)
        raise click.exceptions.Exit(code)

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator[Callable[[str], None]]:
        """A spinner on stderr, only on a terminal and without --json; yields its updater."""
        if self.json_output or not self.err.is_terminal:
            yield lambda _: None
            return
        with self.err.status(text) as spinner:
            yield lambda new: spinner.update(new)

    # -- running ------------------------------------------------------------------

    def run(
        self,
        main: Callable[[], Coroutine[Any, Any, _T]],
        *,
        interrupted_exit: int = EXIT_INTERRUPTED,
    ) -> _T:
        """Run a command's coroutine, turning SDK errors and Ctrl-C into CLI exits.

        ``interrupted_exit``: the exit status after Ctrl-C (0 for commands that run until
        interrupted, such as ``emulator``).
        """
        try:
            # asyncio.run turns the first Ctrl-C into a cancellation of main(), so its
            # finally blocks and ``async with`` exits run before KeyboardInterrupt lands here.
            return asyncio.run(main())
        except KeyboardInterrupt:
            note = self.interrupt_note() if self.interrupt_note is not None else None
            self.note(f"interrupted: {note or 'nothing was left running'}")
            raise click.exceptions.Exit(interrupted_exit) from None
        except MissingAPIKeyError:
            raise click.UsageError(
                "no API key: pass --api-key or set the STREAMRUN_API_KEY environment variable"
            ) from None
        except InsecureTransportError:
            raise click.BadParameter(
                "refusing to send the API key over plain http to a remote host: use https "
                "(plain http is allowed only to loopback, such as the emulator)",
                param_hint="'--base-url'",
            ) from None
        except (InvalidArgumentError, InvalidArgumentTypeError) as error:
            # Refused before anything was sent: a bad id or value on the command line.
            raise click.UsageError(one_line(error)) from None
        except StreamrunError as error:
            self.fail(describe_error(error))


def describe_error(error: StreamrunError) -> str:
    """One line for an SDK error, with a hint where the usual fix is an option of ours."""
    message = one_line(error)
    if isinstance(error, AuthenticationError):
        return f"{message} (check --api-key or STREAMRUN_API_KEY)"
    if isinstance(error, APIConnectionError) and not isinstance(error, APITimeoutError):
        # Could not connect at all (nothing was sent): the address is the usual suspect.
        return message if error.outcome_unknown else f"{message} (check --base-url)"
    return message


def _set_json(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    """The per-command ``--json`` flips the global one."""
    runtime = ctx.find_object(Runtime)
    if value and runtime is not None:
        runtime.json_output = True


def json_option(command: _F) -> _F:
    """``--json`` after the command too: ``streamrun instances list --json`` works."""
    return click.option(
        "--json",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Machine-readable JSON on stdout (same as the global --json).",
    )(command)


def call(rt: Runtime, action: Callable[[StreamrunClient], Awaitable[_T]]) -> _T:
    """Run ``action`` with a client made from the global options, closed afterwards."""

    async def main() -> _T:
        async with rt.client() as client:
            return await action(client)

    return rt.run(main)
