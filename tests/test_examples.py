"""The examples against the emulator; the bots built with the real discord.py and twitchio
(offline: no Discord or Twitch connection)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

import streamrun_async as sr
from streamrun_async.testing import ConfigurationSeed, Emulator, Fault

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LAUNCH_ROUTE = "POST /configurations/{configurationId}/instances"
# Instant boots and 10 ms polls: every wait ends on the first or second tick.
FAST_POLL = sr.PollPolicy(min_interval=0.01, max_interval=0.05, requests_per_second=1000)
OVERLAY = "https://overlays.example/me"


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` afresh (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(clock="real", boot_time=0, idle_timeout=None) as emulator:
        yield emulator


@pytest.fixture
async def emu_client(emu: Emulator) -> AsyncIterator[sr.StreamrunClient]:
    async with emu.client(poll=FAST_POLL, retry=sr.RetryPolicy.for_testing()) as client:
        yield client


# -- every example -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["quickstart", "bulk_launch", "watch_fleet", "discord_bot", "twitch_bot"]
)
def test_imports_without_bot_frameworks(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes any import of these fail, as if not installed.
    for framework in ("discord", "twitchio"):
        monkeypatch.setitem(sys.modules, framework, None)
    module = load(name)
    assert callable(module.main)


@pytest.mark.parametrize("name", ["discord_bot", "twitch_bot"])
def test_only_build_bot_needs_the_framework(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for framework in ("discord", "twitchio"):
        monkeypatch.setitem(sys.modules, framework, None)
    module = load(name)
    kwargs = {}
    if name == "twitch_bot":
        kwargs = {"client_id": "a", "client_secret": "b", "bot_id": "1", "owner_id": "2"}
    with pytest.raises(ImportError):
        module.build_bot("cfg-1", sr.StreamrunClient, **kwargs)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("quickstart", "stopped inst-"),
        ("bulk_launch", "stopped 4 instance(s)"),
        ("watch_fleet", "REMOVED watch-3"),
        ("discord_bot", "/stoplive -> Stream stopped."),
        ("twitch_bot", "!stop -> Stream stopped."),
    ],
)
def test_main_with_emulator(
    name: str,
    expected: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in ("DISCORD_TOKEN", "TWITCH_CLIENT_ID"):
        monkeypatch.delenv(variable, raising=False)
    args = ["--emulator", "--per-configuration", "1"] if name == "bulk_launch" else ["--emulator"]
    example = load(name)
    example.EMULATOR_OPTIONS = {"boot_time": 0.0}  # the example's --emulator, instant boots
    example.main(args)
    assert expected in capsys.readouterr().out


# -- quickstart ----------------------------------------------------------------------------


async def test_quickstart_goes_live_once_and_stops(
    emu: Emulator, emu_client: sr.StreamrunClient
) -> None:
    quickstart = load("quickstart")
    lines: list[str] = []
    instance = await quickstart.go_live_once(emu_client, OVERLAY, log=lines.append)
    assert instance.state is sr.InstanceState.RUNNING
    assert instance.outputs is sr.Outputs.LIVE
    assert instance.overrides == {"htmloverlay-1": {"url": OVERLAY}}
    assert emu.state.count() == 0
    assert [s.id for s in emu.state.stopped] == [instance.id]
    assert any("waiting until it runs" in line for line in lines)


async def test_quickstart_needs_an_overlay_element() -> None:
    quickstart = load("quickstart")
    bare_cfg = ConfigurationSeed("Bare", elements=("inputstream-1", "outputstream-1"))
    async with (
        Emulator(clock="real", boot_time=0, configurations=[bare_cfg]) as bare,
        bare.client(poll=FAST_POLL) as client,
    ):
        with pytest.raises(LookupError, match="htmloverlay-1"):
            await quickstart.go_live_once(client, OVERLAY, log=lambda _: None)


# -- bulk launch ------------------------------------------------------------------------------


async def test_bulk_launch_runs_the_fleet_and_stops_it(
    emu: Emulator, emu_client: sr.StreamrunClient
) -> None:
    bulk = load("bulk_launch")
    events: list[sr.LaunchEvent] = []
    report = await bulk.launch_fleet(emu_client, 2, on_progress=events.append)
    assert report.ok
    assert len(report.launched) == 8
    assert {item.state for item in report.launched.values()} == {sr.InstanceState.RUNNING}
    assert {e.kind for e in events} >= {
        sr.LaunchEventKind.SUBMITTED,
        sr.LaunchEventKind.LAUNCHED,
        sr.LaunchEventKind.RUNNING,
    }
    assert emu.state.count("RUNNING") == 8

    # Again: every name is there already, so nothing is launched (nor billed) twice.
    again = await bulk.launch_fleet(emu_client, 2)
    assert all(item.existing for item in again.launched.values())
    assert emu.stats.count(LAUNCH_ROUTE) == 4
    assert await bulk.stop_fleet(emu_client, again) == []

    stopped = await bulk.stop_fleet(emu_client, report)
    assert len(stopped) == 8
    assert emu.state.count() == 0


async def test_bulk_launch_reconciles_a_lost_answer(
    emu: Emulator, emu_client: sr.StreamrunClient
) -> None:
    bulk = load("bulk_launch")
    emu.faults.script(LAUNCH_ROUTE, [Fault.DROP_AFTER, Fault.HTTP_503])
    report = await bulk.launch_fleet(emu_client, 3)
    assert report.ok
    assert report.reconciliations == 1
    names = sorted(inst.name or "" for inst in emu.state.instances)
    assert names == sorted(report.launched)
    assert len(names) == len(set(names)) == 12


def test_fleet_plan_names() -> None:
    bulk = load("bulk_launch")
    cfg = sr.Configuration(id="cfg-1", name="Lo-fi Radio!")
    plan = bulk.fleet_plan([cfg], 2)
    assert [s.name for s in plan["cfg-1"]] == ["lo-fi-radio-1", "lo-fi-radio-2"]


# -- watch fleet -------------------------------------------------------------------------------


async def test_watch_fleet_sees_them_come_and_go_and_resumes(
    emu: Emulator, emu_client: sr.StreamrunClient
) -> None:
    watch_fleet = load("watch_fleet")
    changes: list[sr.InstanceChange] = []
    tokens: list[str] = []
    seen: set[str] = set()
    names = ["w-1", "w-2"]

    def came_and_went(fleet: dict[str, sr.Instance]) -> bool:
        seen.update(inst.name or "" for inst in fleet.values())
        return seen >= set(names) and not fleet

    traffic = asyncio.create_task(watch_fleet.traffic(emu_client, names))
    fleet = await asyncio.wait_for(
        watch_fleet.watch_fleet(
            emu_client, changes.append, save_token=tokens.append, until=came_and_went
        ),
        timeout=10,
    )
    await traffic
    assert fleet == {}
    kinds = [c.kind for c in changes if c.instance.name == "w-1"]
    assert kinds[0] is sr.ChangeKind.ADDED
    assert kinds[-1] is sr.ChangeKind.REMOVED
    assert watch_fleet.describe(changes[-1]).startswith("REMOVED w-")
    assert len(tokens) == len(changes)

    # Later, in a "restarted process": the token first tells what changed meanwhile.
    cfg = emu.configuration_ids[0]
    await emu_client.configurations.launch(cfg, [sr.InstanceSettings(name="late")])
    resumed: list[sr.InstanceChange] = []
    await asyncio.wait_for(
        watch_fleet.watch_fleet(
            emu_client, resumed.append, resume=tokens[-1], until=lambda fleet: bool(fleet)
        ),
        timeout=10,
    )
    assert [(c.kind, c.instance.name) for c in resumed] == [(sr.ChangeKind.ADDED, "late")]


# -- discord bot -------------------------------------------------------------------------------


async def test_discord_go_live_and_stop(emu: Emulator, emu_client: sr.StreamrunClient) -> None:
    bot = load("discord_bot")
    cfg = emu.configuration_ids[0]
    name = bot.instance_name(1234)
    reply = await bot.go_live(emu_client, cfg, OVERLAY, name=name)
    assert reply.startswith("You are live")
    (inst,) = emu.state.instances
    assert inst.name == "discord-1234"
    assert inst.state == "RUNNING"
    assert inst.outputs == "LIVE"
    assert inst.overrides == {"htmloverlay-1": {"url": OVERLAY}}

    # A second /golive (a double click, a new overlay) launches nothing new.
    other = "https://overlays.example/other"
    assert "already live" in await bot.go_live(emu_client, cfg, other, name=name)
    (inst,) = emu.state.instances
    assert inst.overrides == {"htmloverlay-1": {"url": other}}
    assert emu.stats.count(LAUNCH_ROUTE) == 1
    # The example patches nothing itself: the SDK's on_existing="update" did (one PATCH).
    assert emu.stats.count("PATCH /instances/{instanceId}/overrides") == 1

    assert await bot.stop_live(emu_client, cfg, name=name) == "Stream stopped."
    assert emu.state.count() == 0
    assert await bot.stop_live(emu_client, cfg, name=name) == "You are not live."


async def test_discord_double_click_launches_once_and_reports_progress(
    emu: Emulator, emu_client: sr.StreamrunClient
) -> None:
    bot = load("discord_bot")
    cfg = emu.configuration_ids[0]
    steps: list[str] = []
    replies = await asyncio.gather(
        *(
            bot.go_live(emu_client, cfg, OVERLAY, name="discord-7", progress=steps.append)
            for _ in range(3)
        )
    )
    assert emu.stats.count(LAUNCH_ROUTE) == 1
    assert [inst.name for inst in emu.state.instances] == ["discord-7"]
    assert sum(reply.startswith("You are live") for reply in replies) == 1
    assert sum("already live" in reply for reply in replies) == 2
    assert steps[0] == "Launching your stream..."
    assert "Your stream runs; going live..." in steps


async def test_discord_progress_moves_to_the_channel_before_the_token_expires() -> None:
    bot = load("discord_bot")
    now = [0.0]
    sent: list[tuple[str, str]] = []

    async def edit_reply(text: str) -> None:
        sent.append(("reply", text))

    async def send_to_channel(text: str) -> object:
        sent.append(("channel", text))

        async def edit(new: str) -> None:
            sent.append(("channel edit", new))

        return edit

    shown = bot.ProgressMessage(edit_reply, send_to_channel, clock=lambda: now[0])
    await shown.show("Launching your stream...")
    await shown.show("Launching your stream...")  # unchanged: nothing sent
    now[0] = bot.HANDOFF_AFTER - 1
    await shown.show("Launched; waiting for a server...")
    now[0] = bot.HANDOFF_AFTER
    await shown.show("Your stream runs; going live...")
    now[0] = 3600.0  # long after the interaction's token expired
    await shown.show("You are live!")
    assert sent == [
        ("reply", "Launching your stream..."),
        ("reply", "Launched; waiting for a server..."),
        ("reply", "This took long: follow it in the channel."),
        ("channel", "Your stream runs; going live..."),
        ("channel edit", "You are live!"),
    ]
    assert bot.HANDOFF_AFTER < 15 * 60


async def test_discord_golive_is_for_servers_and_permitted_members_only() -> None:
    bot_module = load("discord_bot")
    bot = bot_module.build_bot("cfg-1", sr.StreamrunClient)
    try:
        golive = bot.tree.get_command("golive")
        assert golive.guild_only
        assert golive.allowed_contexts.dm_channel is False
        assert golive.allowed_contexts.private_channel is False
        assert golive.default_permissions is not None
        assert golive.default_permissions.manage_guild
        assert bot.tree.get_command("stoplive").guild_only
    finally:
        await bot.close()


async def test_discord_go_live_refuses_bad_input(
    emu: Emulator, emu_client: sr.StreamrunClient
) -> None:
    bot = load("discord_bot")
    for url in ("http://plain.example/x", "javascript:alert(1)", "not a url"):
        with pytest.raises(ValueError, match="https://"):
            await bot.go_live(emu_client, emu.configuration_ids[0], url, name="x")
    with pytest.raises(sr.NotFoundError):
        await bot.go_live(emu_client, "cfg-nope", OVERLAY, name="x")
    assert emu.stats.count(LAUNCH_ROUTE) == 0


async def test_discord_go_live_reports_a_slow_start() -> None:
    bot = load("discord_bot")
    async with (
        Emulator(clock="real", boot_time=60) as slow,
        slow.client(poll=FAST_POLL) as client,
    ):
        cfg = slow.configuration_ids[0]
        reply = await bot.go_live(client, cfg, OVERLAY, name="slow", timeout=0.1)
        assert "still starting (QUEUED)" in reply
        assert slow.state.count("QUEUED") == 1


# -- twitch bot ----------------------------------------------------------------------------------


async def test_twitch_golive_and_stop(emu: Emulator, emu_client: sr.StreamrunClient) -> None:
    bot = load("twitch_bot")
    cfg = emu.configuration_ids[1]
    first = await asyncio.gather(
        *(bot.golive_reply(emu_client, cfg, OVERLAY, channel_id="42") for _ in range(2))
    )
    # Two !golive at once: one launch, the other reply knows it is already live.
    assert sorted(first) == ["Already live!", "We are live!"]
    assert emu.stats.count(LAUNCH_ROUTE) == 1
    other = "https://overlays.example/other"
    assert await bot.golive_reply(emu_client, cfg, other, channel_id="42") == (
        "Already live; overlay updated!"
    )
    assert emu.state.instances[0].overrides == {"htmloverlay-1": {"url": other}}
    (inst,) = emu.state.instances
    assert inst.name == "twitch-42"
    assert inst.outputs == "LIVE"
    assert await bot.stop_reply(emu_client, cfg, channel_id="42") == "Stream stopped."
    assert await bot.stop_reply(emu_client, cfg, channel_id="42") == "Not live."
    assert emu.state.count() == 0


async def test_twitch_replies_stay_short_on_errors(
    emu: Emulator, emu_client: sr.StreamrunClient
) -> None:
    bot = load("twitch_bot")
    cfg = emu.configuration_ids[0]
    usage = await bot.golive_reply(emu_client, cfg, "", channel_id="1")
    assert usage.startswith("Usage: !golive")
    failed = await bot.golive_reply(emu_client, "cfg-nope", OVERLAY, channel_id="1")
    assert failed == "Could not start the stream (NotFoundError)."
    assert await bot.stop_reply(emu_client, "cfg-nope", channel_id="1") == (
        "Could not stop the stream (NotFoundError)."
    )
    assert emu.state.count() == 0


class _TwitchContext:
    """What the bot's commands read of twitchio's Context: who speaks, where, and replies."""

    def __init__(self, bot: object, *, channel_id: str, moderator: bool = False) -> None:
        from twitchio.ext import commands

        self.bot = bot
        self.type = commands.ContextType.MESSAGE
        self.broadcaster = SimpleNamespace(id=channel_id)
        self.chatter = SimpleNamespace(moderator=moderator, vip=False, broadcaster=False)
        self.replies: list[str] = []

    async def reply(self, text: str) -> None:
        self.replies.append(text)


# twitchio's web adapter subclasses aiohttp's Application, which aiohttp discourages.
@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpAdapter:DeprecationWarning")
async def test_twitch_bot_built_with_real_twitchio(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from twitchio import eventsub
    from twitchio.ext import commands

    monkeypatch.chdir(tmp_path)  # twitchio keeps its tokens file in the working directory
    example = load("twitch_bot")
    clients: list[sr.StreamrunClient] = []

    def make_client() -> sr.StreamrunClient:
        clients.append(emu.client(poll=FAST_POLL, retry=sr.RetryPolicy.for_testing()))
        return clients[-1]

    cfg = emu.configuration_ids[0]
    bot = example.build_bot(
        cfg, make_client, client_id="cid", client_secret="secret", bot_id="111", owner_id="222"
    )
    subscribed: list[object] = []

    async def subscribe_offline(*, payload: object, **options: object) -> None:
        subscribed.append(payload)  # stands in for the EventSub websocket: no network

    monkeypatch.setattr(bot, "subscribe_websocket", subscribe_offline)
    try:
        assert isinstance(bot, commands.Bot)
        # The setup twitchio runs after login: the client, the commands, the chat subscription.
        await bot.setup_hook()
        assert {"golive", "stop"} <= set(bot.commands)
        (chat,) = subscribed
        assert isinstance(chat, eventsub.ChatMessageSubscription)
        assert (chat.broadcaster_user_id, chat.user_id) == ("222", "111")
        golive, stop = bot.commands["golive"], bot.commands["stop"]
        for command in (golive, stop):
            # The role check: a viewer is refused, a moderator (or the broadcaster) passes.
            assert command.guards
            viewer = _TwitchContext(bot, channel_id="42")
            with pytest.raises(commands.GuardFailure):
                await command.run_guards(viewer)
            await command.run_guards(_TwitchContext(bot, channel_id="42", moderator=True))
        # The registered commands, driven against the emulator as twitchio would call them.
        ctx = _TwitchContext(bot, channel_id="42", moderator=True)
        await golive.callback(golive.component, ctx, OVERLAY)
        assert ctx.replies == ["Starting the stream...", "We are live!"]
        (inst,) = emu.state.instances
        assert (inst.name, inst.state) == ("twitch-42", "RUNNING")
        ctx.replies.clear()
        await stop.callback(stop.component, ctx)
        assert ctx.replies == ["Stream stopped."]
        assert emu.state.count() == 0
    finally:
        await bot.close(save_tokens=False)
    assert [client.closed for client in clients] == [True]
    assert os.listdir(tmp_path) == []  # no tokens file written


def test_twitch_without_tokens_says_what_its_first_run_needs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("TWITCH_CLIENT_ID", "TWITCH_CLIENT_SECRET", "TWITCH_BOT_ID"):
        monkeypatch.delenv(variable, raising=False)
    example = load("twitch_bot")
    example.EMULATOR_OPTIONS = {"boot_time": 0.0}
    example.main(["--emulator"])
    out = capsys.readouterr().out
    for needed in ("TWITCH_CLIENT_ID", "TWITCH_OWNER_ID", "localhost:4343/oauth/callback"):
        assert needed in out
    assert "as the bot account:   http://localhost:4343/oauth?scopes=user:read:chat%20" in out
    for scope in ("user:read:chat", "user:write:chat", "user:bot", "channel:bot"):
        assert scope in out
        assert scope in example.__doc__


async def test_twitch_takes_the_base_url_from_the_option_or_the_environment(
    emu: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    example = load("twitch_bot")
    monkeypatch.delenv("TWITCH_CLIENT_ID", raising=False)
    monkeypatch.setenv("STREAMRUN_API_KEY", emu.api_key)
    cfg = emu.configuration_ids[0]
    monkeypatch.setenv("STREAMRUN_BASE_URL", "http://127.0.0.1:9")  # wrong: the option wins
    await example.run(False, cfg, OVERLAY, emu.url)
    assert "!stop -> Stream stopped." in capsys.readouterr().out
    monkeypatch.setenv("STREAMRUN_BASE_URL", emu.url)
    await example.run(False, cfg, OVERLAY)
    assert "!stop -> Stream stopped." in capsys.readouterr().out
    assert emu.stats.count(LAUNCH_ROUTE) == 2
