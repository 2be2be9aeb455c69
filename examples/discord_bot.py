"""A Discord bot with ``/golive overlay_url:`` and ``/stoplive``, on discord.py.

    pip install discord.py
    DISCORD_TOKEN=... STREAMRUN_API_KEY=... python examples/discord_bot.py --configuration CFG
    DISCORD_TOKEN=... python examples/discord_bot.py --emulator      # Streamrun emulated

Without DISCORD_TOKEN it acts out one /golive and one /stoplive in the terminal, so the
Streamrun part can be tried alone: ``python examples/discord_bot.py --emulator``.

The patterns a bot needs:

- one ``StreamrunClient`` for the bot's whole life, made in ``setup_hook`` (inside the
  bot's event loop) and closed when the bot closes;
- ``/golive`` costs money: it works in servers only (not in DMs) and, by default, only for
  members who may manage the server (``default_member_permissions``; admins can grant it
  to other roles under Server Settings > Integrations);
- a slash command defers at once (Discord wants an answer within 3 seconds, a launch
  takes longer), then edits its message as the launch progresses. An interaction's
  token lasts 15 minutes: past ``HANDOFF_AFTER`` the progress moves to a message in the
  channel, which the bot may edit for as long as it likes;
- each user's stream is an instance named after them, and the SDK's ``launch_many``
  launches each name exactly once: a double-click, a retry, or two bot shards sharing a
  ``coordinator`` never start (and bill) a second stream. A name already live gets the
  new overlay (``on_existing="update"``, the behaviour the Twitch example and the CLI
  share).

The Streamrun part is plain async functions (``go_live``, ``stop_live``); discord.py is
imported only by ``build_bot``.
"""

# No ``from __future__ import annotations`` here: discord.py reads the slash command's
# annotations at run time, and ``discord`` is imported inside build_bot only.

import argparse
import asyncio
import contextlib
import functools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import streamrun_async as sr

EMULATOR_OPTIONS: dict[str, Any] = {"boot_time": 2.0, "boot_jitter": 1.0}
OVERLAY_ELEMENT = "htmloverlay-1"
# An interaction token lasts 15 minutes; hand off to a channel message well before.
HANDOFF_AFTER = 14 * 60.0
# Who may use /golive by default (server admins can grant it to other roles).
GOLIVE_PERMISSIONS = {"manage_guild": True}
STEP_TEXT = {
    sr.LaunchEventKind.SUBMITTED: "Launching your stream...",
    sr.LaunchEventKind.RECONCILING: "The answer was lost; checking what really launched...",
    sr.LaunchEventKind.LAUNCHED: "Launched; waiting for a server...",
    sr.LaunchEventKind.EXISTING: "You already have a stream; updating it...",
    sr.LaunchEventKind.RUNNING: "Your stream runs; going live...",
}


def instance_name(user_id: int | str) -> str:
    """The name of a Discord user's instance: one stream per user."""
    return f"discord-{user_id}"


def check_overlay_url(url: str) -> str:
    """Refuse anything but an https URL: it comes from a chat user."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError(f"the overlay must be an https:// URL, not {url!r}")
    return url


class ProgressMessage:
    """Where ``/golive`` shows its progress: the interaction's own reply, then, once
    ``handoff_after`` seconds have passed (its token expires at 15 minutes), a message
    in the channel that is edited from then on.

    ``edit_reply`` and ``send_to_channel`` are the Discord calls (injected, so that this
    can be tried without Discord); ``send_to_channel`` returns the new message's editor.
    """

    def __init__(
        self,
        edit_reply: Callable[[str], Awaitable[Any]],
        send_to_channel: Callable[[str], Awaitable[Callable[[str], Awaitable[Any]]]],
        *,
        handoff_after: float = HANDOFF_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._edit_reply = edit_reply
        self._send_to_channel = send_to_channel
        self._clock = clock
        self._handoff_at = clock() + handoff_after
        self._edit_channel: Callable[[str], Awaitable[Any]] | None = None
        self.shown: str | None = None

    async def show(self, text: str) -> None:
        """Show ``text`` (nothing is sent when it is already shown)."""
        if text == self.shown:
            return
        self.shown = text
        if self._edit_channel is not None:
            await self._edit_channel(text)
        elif self._clock() < self._handoff_at:
            await self._edit_reply(text)
        else:
            await self._edit_reply("This took long: follow it in the channel.")
            self._edit_channel = await self._send_to_channel(text)


async def go_live(
    client: sr.StreamrunClient,
    configuration_id: str,
    overlay_url: str,
    *,
    name: str,
    timeout: float = 600.0,
    progress: Callable[[str], Any] | None = None,
) -> str:
    """Launch ``name`` with the user's overlay, wait until it runs, set outputs LIVE.

    ``progress`` is called with a line for each step. Returns the message to show the
    user. Raises ``ValueError`` for a bad URL and ``sr.StreamrunError`` when the API fails.
    """
    check_overlay_url(overlay_url)
    settings = sr.InstanceSettings(name=name, overrides={OVERLAY_ELEMENT: {"url": overlay_url}})

    def on_step(event: sr.LaunchEvent) -> None:
        if progress is not None and event.kind in STEP_TEXT:
            progress(STEP_TEXT[event.kind])

    report = await client.launch_many(
        {configuration_id: [settings]},
        wait=True,
        timeout=timeout,
        on_existing="update",
        on_progress=on_step,
    )
    item = report.items[name]
    if item.status is sr.LaunchStatus.FAILED:
        raise report.failed[name]
    if item.status is sr.LaunchStatus.UNKNOWN:
        return "Streamrun did not confirm the launch. Wait a minute, then try /golive again."
    if report.wait_error is not None:
        return f"Your stream is still starting ({item.state}). Try /golive again in a minute."
    await client.configurations.set_outputs(configuration_id, sr.Outputs.LIVE)
    if item.existing:
        return f"You were already live; your overlay is now {overlay_url}"
    after = f" after {item.running_after:.0f} s" if item.running_after is not None else ""
    return f"You are live{after}! Overlay: {overlay_url}"


async def stop_live(client: sr.StreamrunClient, configuration_id: str, *, name: str) -> str:
    """Stop the user's instance, if there is one; returns the message to show."""
    instances = await client.configurations.list_instances(configuration_id)
    mine = [inst for inst in instances if inst.name == name]
    for inst in mine:
        await client.instances.stop(inst.id)
    return "Stream stopped." if mine else "You are not live."


def build_bot(configuration_id: str, make_client: Callable[[], sr.StreamrunClient]) -> Any:
    """The discord.py client with its two slash commands (needs ``pip install discord.py``)."""
    import discord
    from discord import app_commands

    class GoLiveBot(discord.Client):
        """A Discord client with the slash commands and the bot's one StreamrunClient."""

        def __init__(self) -> None:
            super().__init__(intents=discord.Intents.default())
            self.tree = app_commands.CommandTree(self)
            self.streamrun: sr.StreamrunClient | None = None

        async def setup_hook(self) -> None:
            """Open the StreamrunClient and publish the slash commands."""
            # Made here, in the bot's running loop, and kept for the bot's lifetime.
            self.streamrun = make_client()
            await self.tree.sync()

        async def close(self) -> None:
            """Close Discord first (no new commands), then the StreamrunClient."""
            try:
                await super().close()
            finally:
                if self.streamrun is not None:
                    await self.streamrun.aclose()

    bot = GoLiveBot()

    @bot.tree.command(name="golive", description="Start your stream with your overlay")
    @app_commands.guild_only()
    @app_commands.default_permissions(**GOLIVE_PERMISSIONS)
    @app_commands.describe(overlay_url="The https:// address of your overlay page")
    async def golive(interaction: discord.Interaction, overlay_url: str) -> None:
        """Start your stream with your overlay."""
        # First, within Discord's 3 seconds: "thinking...".
        await interaction.response.defer(thinking=True)
        assert bot.streamrun is not None
        channel = interaction.channel

        async def edit_reply(text: str) -> None:
            await interaction.edit_original_response(content=text)

        async def send_to_channel(text: str) -> Callable[[str], Awaitable[Any]]:
            assert isinstance(channel, discord.abc.Messageable)
            message = await channel.send(f"{interaction.user.mention}: {text}")
            return lambda new: message.edit(content=f"{interaction.user.mention}: {new}")

        shown = ProgressMessage(edit_reply, send_to_channel)
        steps: asyncio.Queue[str | None] = asyncio.Queue()

        async def show_steps() -> None:
            # One edit at a time, in order, until the None that ends the steps.
            while (text := await steps.get()) is not None:
                await shown.show(text)

        shower = asyncio.create_task(show_steps())
        try:
            reply = await go_live(
                bot.streamrun,
                configuration_id,
                overlay_url,
                name=instance_name(interaction.user.id),
                progress=steps.put_nowait,
            )
        except (ValueError, sr.StreamrunError) as error:
            reply = f"Could not go live: {error}"
        finally:
            # The steps already queued are shown first (no edit cut off halfway, no hand-off
            # message left behind), then the outcome.
            steps.put_nowait(None)
            await shower
        await shown.show(reply)

    @bot.tree.command(name="stoplive", description="Stop your stream")
    @app_commands.guild_only()
    async def stoplive(interaction: discord.Interaction) -> None:
        """Stop your stream."""
        await interaction.response.defer(thinking=True)
        assert bot.streamrun is not None
        try:
            reply = await stop_live(
                bot.streamrun, configuration_id, name=instance_name(interaction.user.id)
            )
        except sr.StreamrunError as error:
            reply = f"Could not stop: {error}"
        await interaction.edit_original_response(content=reply)

    return bot


async def run(emulator: bool, configuration_id: str | None, overlay_url: str) -> None:
    """Serve the bot (or act it out without a Discord token)."""
    async with contextlib.AsyncExitStack() as stack:
        if emulator:
            from streamrun_async.testing import Emulator

            emu = await stack.enter_async_context(Emulator(**EMULATOR_OPTIONS))
            poll = sr.PollPolicy(min_interval=0.25, max_interval=1.0)  # boots take seconds
            make_client: Callable[[], sr.StreamrunClient] = functools.partial(emu.client, poll=poll)
            configuration_id = configuration_id or emu.configuration_ids[0]
        elif configuration_id is None:
            raise SystemExit("--configuration is required (streamrun configurations list)")
        else:
            make_client = sr.StreamrunClient
        token = os.environ.get("DISCORD_TOKEN")
        if not token:
            print("DISCORD_TOKEN is not set: acting out /golive and /stoplive here instead")
            async with make_client() as client:
                name = instance_name("you")
                print("/golive ->", await go_live(client, configuration_id, overlay_url, name=name))
                print("/stoplive ->", await stop_live(client, configuration_id, name=name))
            return
        bot = build_bot(configuration_id, make_client)
        async with bot:
            await bot.start(token)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulator", action="store_true", help="use a local emulator")
    parser.add_argument("--configuration", help="the configuration each /golive launches")
    parser.add_argument("--overlay", default="https://example.com/overlay", help="for the act")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.emulator, args.configuration, args.overlay))


if __name__ == "__main__":
    main()
