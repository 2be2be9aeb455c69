"""What every command shares: the global options, the output, and the async runner.

The runner is where the CLI's promises live: an API error is one line on stderr and exit
1, a bad argument is a usage error (exit 2), and Ctrl-C ends the command cleanly, saying
what it leaves running (exit 130). Stdout carries only data (tables, JSON, ids); every
remark goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import attrs
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

if TYPE_CHECKING:
    from streamrun_async.guard import Guard

from ._render import Rows, View, one_line, plain, rich_view, to_jsonable

__all__ = [
    "EXIT_API_ERROR",
    "EXIT_INTERRUPTED",
    "OUTPUT_FORMATS",
    "CommandError",
    "Runtime",
    "call",
    "describe_error",
    "follow_up",
    "install_global_options",
    "json_option",
]

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])

EXIT_API_ERROR = 1
EXIT_INTERRUPTED = 130  # the shell's convention for "ended by SIGINT"
OUTPUT_FORMATS = ("table", "wide", "json", "ids")
# Rich wraps to 80 columns when it cannot ask a terminal; logs and pipes read better wider.
_PLAIN_WIDTH = 120
_MAX_POLL_INTERVAL = 10.0
# A follow-up call after Ctrl-C or a timeout (to name what was left running) gets this long.
_FOLLOW_UP_SECONDS = 5.0


class CommandError(click.ClickException):
    """A failure a command found itself (not an SDK error): ``error: ...``, exit 1."""

    exit_code = EXIT_API_ERROR

    def show(self, file: Any = None) -> None:
        """One ``error: ...`` line on stderr, like every other error of the CLI."""
        click.echo(f"error: {self.format_message()}", err=True)


class Runtime:
    """The options of one ``streamrun`` invocation, shared by its command (``ctx.obj``)."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str,
        output: str = "table",
        poll_interval: float = 1.0,
    ) -> None:
        # The key is kept only to hand to the client; nothing here prints it.
        self.api_key = api_key
        self.base_url = base_url
        self.output = output
        """One of ``OUTPUT_FORMATS``: ``-o``; ``--json`` is ``-o json``."""
        self.poll_interval = poll_interval
        self.out = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)
        for console in (self.out, self.err):
            if not console.is_terminal:
                console.width = _PLAIN_WIDTH
        self.interrupt_note: Callable[[], str] | None = None
        """Set by a command: what it leaves behind if Ctrl-C ends it now."""

    def __repr__(self) -> str:
        return f"<Runtime {self.base_url} -o {self.output}>"

    @property
    def json_output(self) -> bool:
        """True with ``--json`` or ``-o json``."""
        return self.output == "json"

    @json_output.setter
    def json_output(self, value: bool) -> None:
        if value:
            self.output = "json"

    def client(
        self, guard: Guard | None = None, *, give_up_after: float | None = None
    ) -> StreamrunClient:
        """A client from the global options (and ``guard``). Make it inside the running loop.

        ``give_up_after``: seconds of nothing but failed polls before waits and watches end
        with the error (default: ``PollPolicy``'s).
        """
        interval = self.poll_interval
        poll = PollPolicy(
            min_interval=interval,
            # Waits slow down while nothing changes, but never below the asked interval.
            max_interval=max(interval, min(_MAX_POLL_INTERVAL, interval * 10)),
            # The budget must leave room for a list and a request fetch in each tick.
            requests_per_second=max(5.0, 2.0 / interval),
        )
        if give_up_after is not None:
            poll = attrs.evolve(poll, give_up_after=give_up_after)
        return StreamrunClient(api_key=self.api_key, base_url=self.base_url, poll=poll, guard=guard)

    # -- output -------------------------------------------------------------------

    def print_json(self, value: Any) -> None:
        """Write ``value`` as JSON on stdout (models become snake_case objects)."""
        click.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))

    def print_json_line(self, value: Any) -> None:
        """Write ``value`` as one compact JSON line on stdout (for streams)."""
        click.echo(json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":")))

    def show(self, value: _T, render: Callable[[_T], View], empty: str | None = None) -> None:
        """``value`` in the ``-o`` format: JSON, ids one per line, or a table for people.

        ``empty``: the remark (on stderr) when ``value`` is empty and a table was asked for.
        """
        if self.json_output:
            self.print_json(value)
            return
        view = render(value)
        if self.output == "ids":
            self.print_ids(view.ids if isinstance(view, Rows) else [view.id])
        elif empty is not None and not value:
            self.note(empty)
        else:
            self.print_view(view)

    def print_view(self, view: View, *, err: bool = False) -> None:
        """A table on a terminal; plain aligned text (no box drawing) anywhere else.

        ``err``: on stderr (for commands whose stdout carries JSON).
        """
        wide = self.output == "wide"
        console = self.err if err else self.out
        if console.is_terminal:
            console.print(rich_view(view, wide=wide))
        else:
            click.echo(plain(view, wide=wide), err=err)

    def print_ids(self, ids: Iterable[str | None]) -> None:
        """One id per line, for ``xargs``."""
        for item in ids:
            if item:
                click.echo(item)

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


def _setter(attribute: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """A callback that gives a global option given after the command to the runtime."""

    def remember(ctx: click.Context, _: click.Parameter, value: Any) -> None:
        runtime = ctx.find_object(Runtime)
        if value is not None and runtime is not None:
            setattr(runtime, attribute, value)

    return remember


def _late_options(api: bool) -> list[click.Option]:
    """The global options again, for use after a command's name (no env, no defaults)."""
    options = [
        click.Option(
            ["-o", "--output"],
            type=click.Choice(OUTPUT_FORMATS),
            expose_value=False,
            callback=_setter("output"),
            help="Output: table (default), wide, json, or ids (one per line).",
        ),
        click.Option(
            ["--json"],
            is_flag=True,
            default=None,
            expose_value=False,
            callback=_set_json,
            help="Same as -o json.",
        ),
    ]
    if api:
        options += [
            click.Option(
                ["--api-key"],
                metavar="KEY",
                expose_value=False,
                callback=_setter("api_key"),
                help="Your Streamrun API key (default: STREAMRUN_API_KEY). Never printed.",
            ),
            click.Option(
                ["--base-url"],
                metavar="URL",
                expose_value=False,
                callback=_setter("base_url"),
                help="The API's address (default: STREAMRUN_BASE_URL or https://streamrun.com).",
            ),
        ]
    return options


def install_global_options(
    group: click.Group, *, without_api: Iterable[str] = (), untouched: Iterable[str] = ()
) -> None:
    """Let every command and group take ``-o``, ``--json``, ``--api-key``, ``--base-url``.

    ``without_api``: top-level commands that never call the API (they take ``-o`` and
    ``--json`` only); ``untouched``: commands that parse their own arguments. An option a
    command already has is left to it.
    """
    skip = set(without_api)
    leave = set(untouched)

    def visit(command: click.Command, api: bool) -> None:
        # Groups take them too (``streamrun instances --api-key K list``); the innermost
        # command's callback runs last, so the option closest to the leaf wins.
        taken = {opt for param in command.params for opt in param.opts}
        for option in _late_options(api):
            if not taken.intersection(option.opts):
                command.params.append(option)
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                if name not in leave:
                    visit(sub, api and name not in skip)

    visit(group, True)


def call(
    rt: Runtime,
    action: Callable[[StreamrunClient], Awaitable[_T]],
    *,
    guard: Guard | None = None,
    give_up_after: float | None = None,
) -> _T:
    """Run ``action`` with a client made from the global options, closed afterwards."""

    async def main() -> _T:
        async with rt.client(guard, give_up_after=give_up_after) as client:
            return await action(client)

    return rt.run(main)


def follow_up(rt: Runtime, action: Callable[[StreamrunClient], Awaitable[_T]]) -> _T | None:
    """After Ctrl-C or a timeout: one short call to learn what is left; None if it fails.

    Bounded by a few seconds, and a second Ctrl-C ends it: the answer is a courtesy.
    """

    async def main() -> _T:
        async with asyncio.timeout(_FOLLOW_UP_SECONDS), rt.client() as client:
            return await action(client)

    try:
        return asyncio.run(main())
    except (StreamrunError, TimeoutError, KeyboardInterrupt, OSError):
        return None
