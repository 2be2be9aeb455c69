"""A Twitch chat bot with ``!golive <overlay-url>`` and ``!stop``, on twitchio 3.

    pip install 'streamrun-async[examples]'       # twitchio 3 (and discord.py)
    TWITCH_CLIENT_ID=... TWITCH_CLIENT_SECRET=... TWITCH_BOT_ID=... TWITCH_OWNER_ID=... \\
    STREAMRUN_API_KEY=... python examples/twitch_bot.py --configuration CFG
    ... python examples/twitch_bot.py --emulator                  # Streamrun emulated

The Streamrun address is ``--base-url`` or ``STREAMRUN_BASE_URL`` (default
https://streamrun.com); the key is ``STREAMRUN_API_KEY``.

First run (twitchio 3 reads chat through EventSub, with user tokens it keeps):

1. Register an application at https://dev.twitch.tv/console with the OAuth redirect URL
   ``http://localhost:4343/oauth/callback``; its client id and secret are TWITCH_CLIENT_ID
   and TWITCH_CLIENT_SECRET. TWITCH_BOT_ID and TWITCH_OWNER_ID are the numeric user ids of
   the bot account and of the broadcaster.
2. Start the bot, then, logged in to Twitch as the BOT account, open
   ``http://localhost:4343/oauth?scopes=user:read:chat%20user:write:chat%20user:bot``
   (read and send chat, and appear as a bot).
3. Logged in as the BROADCASTER, open ``http://localhost:4343/oauth?scopes=channel:bot``
   (lets the bot into the channel; a bot that is a moderator there does not need it).
4. Restart the bot: twitchio saved the tokens in ``.tio.tokens.json`` (keep that file
   private) and loads them on every later run.

Without the TWITCH_* variables it says what it needs and acts out one ``!golive`` and one
``!stop`` in the terminal: ``python examples/twitch_bot.py --emulator``.

Only the broadcaster, moderators and VIPs may use the commands: a launch costs money.
Each channel's stream is an instance named after the channel, and the SDK's
``launch_many`` launches each name exactly once, so ``!golive`` twice (or from two bot
processes sharing a ``coordinator``) is harmless; ``!golive`` with a new overlay while
live updates the overlay (``on_existing="update"``, as the Discord example and the CLI).

The Streamrun part is plain async functions (``golive_reply``, ``stop_reply``); twitchio
is imported only by ``build_bot``.
"""
# No ``from __future__ import annotations`` here: twitchio reads the commands'
# annotations at run time, and ``twitchio`` is imported inside build_bot only.

import argparse
import asyncio
import contextlib
import functools
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import streamrun_async as sr

EMULATOR_OPTIONS: dict[str, Any] = {"boot_time": 2.0, "boot_jitter": 1.0}
OVERLAY_ELEMENT = "htmloverlay-1"
_TWITCH_VARIABLES = ("TWITCH_CLIENT_ID", "TWITCH_CLIENT_SECRET", "TWITCH_BOT_ID", "TWITCH_OWNER_ID")
BOT_SCOPES = ("user:read:chat", "user:write:chat", "user:bot")
BROADCASTER_SCOPES = ("channel:bot",)
FIRST_RUN = f"""\
To serve Twitch chat, set {", ".join(_TWITCH_VARIABLES)}
(your application at https://dev.twitch.tv/console, redirect URL
http://localhost:4343/oauth/callback; the bot's and the broadcaster's user ids), start the
bot, then authorise once (twitchio keeps the tokens in .tio.tokens.json):
  as the bot account:   http://localhost:4343/oauth?scopes={"%20".join(BOT_SCOPES)}
  as the broadcaster:   http://localhost:4343/oauth?scopes={"%20".join(BROADCASTER_SCOPES)}"""


def instance_name(channel_id: str) -> str:
    """The name of a channel's instance: one stream per channel."""
    return f"twitch-{channel_id}"


async def golive_reply(
    client: sr.StreamrunClient,
    configuration_id: str,
    overlay_url: str,
    *,
    channel_id: str,
    timeout: float = 600.0,
) -> str:
    """Start the channel's stream with ``overlay_url``; returns the chat reply."""
    parts = urlsplit(overlay_url)
    if parts.scheme != "https" or not parts.netloc:
        return "Usage: !golive https://your-overlay-page"
    settings = sr.InstanceSettings(
        name=instance_name(channel_id), overrides={OVERLAY_ELEMENT: {"url": overlay_url}}
    )
    try:
        report = await client.launch_many(
            {configuration_id: [settings]}, wait=True, timeout=timeout, on_existing="update"
        )
        failed = report.failed.get(settings.name)
        if failed is not None:
            return f"Could not start the stream ({type(failed).__name__})."
        if not report.ok:
            # Unknown, or not RUNNING in time: a retry is safe, it never launches twice.
            return "The stream is not up yet; try !golive again in a minute."
        item = report.items[settings.name]
        await client.configurations.set_outputs(configuration_id, sr.Outputs.LIVE)
    except sr.StreamrunError as error:
        return f"Could not start the stream ({type(error).__name__})."
    if item.status is sr.LaunchStatus.UPDATED:
        return "Already live; overlay updated!"
    return "Already live!" if item.existing else "We are live!"


async def stop_reply(client: sr.StreamrunClient, configuration_id: str, *, channel_id: str) -> str:
    """Stop the channel's stream; returns the chat reply."""
    name = instance_name(channel_id)
    try:
        instances = await client.configurations.list_instances(configuration_id)
        mine = [inst.id for inst in instances if inst.name == name]
        await asyncio.gather(*(client.instances.stop(instance_id) for instance_id in mine))
    except sr.StreamrunError as error:
        return f"Could not stop the stream ({type(error).__name__})."
    return "Stream stopped." if mine else "Not live."


def build_bot(
    configuration_id: str,
    make_client: Callable[[], sr.StreamrunClient],
    *,
    client_id: str,
    client_secret: str,
    bot_id: str,
    owner_id: str,
) -> Any:
    """The twitchio bot with its two commands (needs ``pip install twitchio``)."""
    from twitchio import eventsub
    from twitchio.ext import commands

    class GoLive(commands.Component):
        """The chat commands."""

        def __init__(self, bot: "GoLiveBot") -> None:
            self.bot = bot

        @commands.is_elevated()
        @commands.command()
        async def golive(self, ctx: commands.Context, overlay_url: str = "") -> None:
            """!golive <overlay-url>: start the channel's stream."""
            await ctx.reply("Starting the stream...")
            reply = await golive_reply(
                self.bot.streamrun, configuration_id, overlay_url, channel_id=ctx.broadcaster.id
            )
            await ctx.reply(reply)

        @commands.is_elevated()
        @commands.command()
        async def stop(self, ctx: commands.Context) -> None:
            """!stop: stop the channel's stream."""
            reply = await stop_reply(
                self.bot.streamrun, configuration_id, channel_id=ctx.broadcaster.id
            )
            await ctx.reply(reply)

    class GoLiveBot(commands.Bot):
        """A twitchio bot with the commands and the bot's one StreamrunClient."""

        def __init__(self) -> None:
            super().__init__(
                client_id=client_id,
                client_secret=client_secret,
                bot_id=bot_id,
                owner_id=owner_id,
                prefix="!",
            )
            self._streamrun: sr.StreamrunClient | None = None

        @property
        def streamrun(self) -> sr.StreamrunClient:
            """The StreamrunClient opened in setup_hook."""
            assert self._streamrun is not None, "used before setup_hook"
            return self._streamrun

        async def setup_hook(self) -> None:
            """Open the StreamrunClient, add the commands, listen to the owner's chat."""
            # Made here, in the bot's running loop, and kept for the bot's lifetime.
            self._streamrun = make_client()
            await self.add_component(GoLive(self))
            chat = eventsub.ChatMessageSubscription(broadcaster_user_id=owner_id, user_id=bot_id)
            await self.subscribe_websocket(payload=chat)

        async def close(self, **options: Any) -> None:
            """Close Twitch first (no new commands), then the StreamrunClient."""
            try:
                await super().close(**options)
            finally:
                if self._streamrun is not None:
                    await self._streamrun.aclose()

    return GoLiveBot()


async def run(
    emulator: bool, configuration_id: str | None, overlay_url: str, base_url: str | None = None
) -> None:
    """Serve the bot (or act it out without Twitch credentials)."""
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
            # base_url None: the client reads STREAMRUN_BASE_URL, else the real API.
            make_client = functools.partial(sr.StreamrunClient, base_url=base_url)
        credentials = {name: os.environ.get(name, "") for name in _TWITCH_VARIABLES}
        if not all(credentials.values()):
            print(FIRST_RUN)
            print("TWITCH_* variables are not set: acting out !golive and !stop here instead")
            async with make_client() as client:
                print(
                    "!golive ->",
                    await golive_reply(client, configuration_id, overlay_url, channel_id="you"),
                )
                print("!stop ->", await stop_reply(client, configuration_id, channel_id="you"))
            return
        bot = build_bot(
            configuration_id,
            make_client,
            client_id=credentials["TWITCH_CLIENT_ID"],
            client_secret=credentials["TWITCH_CLIENT_SECRET"],
            bot_id=credentials["TWITCH_BOT_ID"],
            owner_id=credentials["TWITCH_OWNER_ID"],
        )
        async with bot:
            await bot.start()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulator", action="store_true", help="use a local emulator")
    parser.add_argument("--configuration", help="the configuration !golive launches")
    parser.add_argument("--overlay", default="https://example.com/overlay", help="for the act")
    parser.add_argument(
        "--base-url", help="the Streamrun API's address (default: STREAMRUN_BASE_URL)"
    )
    args = parser.parse_args(argv)
    if args.emulator and args.base_url:
        parser.error("--emulator and --base-url are exclusive")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.emulator, args.configuration, args.overlay, args.base_url))


if __name__ == "__main__":
    main()
