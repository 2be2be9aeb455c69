"""``sr.Fleet``: fleet files checked with file, line and key; ``client.apply`` plans and reports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import streamrun_async as sr
from streamrun_async.testing import ROUTES, ConfigurationSeed, Emulator

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fleet.toml"
LAUNCH_ROUTE = "POST /configurations/{configurationId}/instances"
FAST_POLL = sr.PollPolicy(min_interval=0.01, max_interval=0.05, requests_per_second=1000)
K = sr.FleetActionKind


def write(tmp_path: Path, text: str, name: str = "fleet.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_file() -> None:
    fleet = sr.Fleet.from_file(EXAMPLE)
    assert fleet.owner == "studio-a"
    assert fleet.hourly_rate == 0.39
    morning, radio = fleet.configurations
    assert (morning.id, morning.name, morning.outputs) == (None, "Morning Show", sr.Outputs.LIVE)
    assert [i.name for i in morning.instances] == ["cam-1", "cam-2"]
    assert morning.instances[0].ttl == 4 * 3600
    assert morning.instances[1].overrides == {
        "htmloverlay-1": {"url": "https://example.com/overlays/cam-2"},
        "switch-1": {"input": "inputstream-1"},
    }
    assert radio.outputs is sr.Outputs.OFFLINE
    assert fleet.launched_name("cam-1") == "studio-a/cam-1"


_GOOD = """owner = "o"

[[configurations]]
id = "cfg-1"

[[configurations.instances]]
name = "a"
"""


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ('owner = "o"\ncolour = "red"\n', 2, "colour", "unknown key"),
        ("hourly_rate = 1\n", None, None, "owner is required"),
        ('owner = "a/b"\n', 1, "owner", "no '/'"),
        ('owner = "o"\nhourly_rate = "cheap"\n', 2, "hourly_rate", "a number >= 0"),
        (_GOOD + 'nmae = "b"\n', 8, "configurations[0].instances[0].nmae", "unknown key"),
        (
            _GOOD + "\n[[configurations.instances]]\nname = 3\n",
            10,
            "configurations[0].instances[1].name",
            "must be a string, not a number",
        ),
        (
            _GOOD + '\n[[configurations.instances]]\nname = "a"\n',
            10,
            "configurations[0].instances[1].name",
            "'a' is declared twice (first at line 7)",
        ),
        (_GOOD + 'ttl = "forever"\n', 8, "configurations[0].instances[0].ttl", "not a duration"),
        (_GOOD + "ttl = 0\n", 8, "configurations[0].instances[0].ttl", "positive"),
        (
            _GOOD + 'overrides = { "htmloverlay-1" = "x" }\n',
            8,
            "configurations[0].instances[0].overrides.htmloverlay-1",
            "a table of settings",
        ),
        (_GOOD + 'name = ""\n', None, None, "Cannot overwrite a value"),  # TOML's own error
        (
            _GOOD.replace('id = "cfg-1"', 'id = "cfg-1"\nname = "x"'),
            3,
            "configurations[0]",
            "exactly one of id or name",
        ),
        (
            _GOOD.replace('id = "cfg-1"', 'id = "cfg-1"\noutputs = "live"'),
            5,
            "configurations[0].outputs",
            '"LIVE" or "OFFLINE"',
        ),
        (_GOOD + '\n[[configurations]]\nid = "cfg-1"\n', 9, "configurations[1]", "declared twice"),
        ('owner = "o"\n[[configurations]\n', 2, None, ""),  # a TOML syntax error: its line
        (
            'owner = "o"\nconfigurations = [{ id = "c", instances = [{ name = " a" }] }]\n',
            2,
            "configurations[0].instances[0].name",
            "leading or trailing spaces",
        ),
    ],
)
def test_bad_files_name_file_line_and_key(
    tmp_path: Path, text: str, line: int | None, key: str | None, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(sr.FleetFileError) as caught:
        sr.Fleet.from_file(path)
    error = caught.value
    assert error.path == str(path)
    if line is not None:
        assert error.line == line
        assert str(error).startswith(f"{path}:{line}: ")
    if key is not None:
        assert error.key == key
        assert f": {key}: " in str(error)
    assert message in str(error)
    assert isinstance(error, sr.InvalidArgumentError)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(sr.FleetFileError, match="No such file"):
        sr.Fleet.from_file(tmp_path / "nope.toml")


def test_yaml_reads_the_same_fleet_and_names_lines(tmp_path: Path) -> None:
    yaml_text = """\
owner: studio-a
hourly_rate: 0.39
configurations:
  - name: Morning Show
    outputs: LIVE
    instances:
      - name: cam-1
        ttl: 4h
        overrides: {htmloverlay-1: {url: "https://example.com/overlays/cam-1"}}
      - name: cam-2
        overrides:
          htmloverlay-1: {url: "https://example.com/overlays/cam-2"}
          switch-1: {input: inputstream-1}
  - name: Lo-fi Radio
    outputs: OFFLINE
    instances:
      - name: radio-1
"""
    assert sr.Fleet.from_file(write(tmp_path, yaml_text, "fleet.yaml")) == sr.Fleet.from_file(
        EXAMPLE
    )
    bad = yaml_text.replace("      - name: radio-1", "      - name: radio-1\n        tll: 1h")
    with pytest.raises(sr.FleetFileError) as caught:
        sr.Fleet.from_file(write(tmp_path, bad, "bad.yml"))
    assert caught.value.line == 18
    assert caught.value.key == "configurations[1].instances[0].tll"
    with pytest.raises(sr.FleetFileError) as syntax:
        sr.Fleet.from_file(write(tmp_path, "owner: [a\n", "broken.yaml"))
    assert syntax.value.line == 2


# -- planning and applying against the emulator -----------------------------------------


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    seeds = [
        ConfigurationSeed("Morning Show"),
        ConfigurationSeed("Lo-fi Radio"),
        ConfigurationSeed("Twin"),
        ConfigurationSeed("Twin"),
    ]
    async with Emulator(configurations=seeds, boot_time=0, idle_timeout=None) as emulator:
        yield emulator


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[sr.StreamrunClient]:
    async with emu.client(poll=FAST_POLL, retry=sr.RetryPolicy.for_testing()) as c:
        yield c


def writes(emu: Emulator) -> int:
    """Calls that change something."""
    return sum(emu.stats.count(route) for route in ROUTES if not route.startswith("GET"))


async def test_apply_launches_sets_outputs_and_a_second_apply_does_nothing(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    fleet = sr.Fleet.from_file(EXAMPLE)
    plan = (await client.apply(fleet, dry_run=True)).plan
    assert [(a.kind, a.name) for a in plan.actions] == [
        (K.LAUNCH, "cam-1"),
        (K.LAUNCH, "cam-2"),
        (K.SET_OUTPUTS, None),  # Morning Show goes LIVE; new instances start OFFLINE
        (K.LAUNCH, "radio-1"),
    ]
    assert (plan.cost_per_hour_now, plan.cost_per_hour_after) == (0, 1.17)
    assert writes(emu) == 0  # planning only reads

    report = await client.apply(fleet, wait=True, timeout=10)
    assert report.ok
    assert report.changed
    assert sorted(i.name or "" for i in emu.state.instances) == [
        "studio-a/cam-1",
        "studio-a/cam-2",
        "studio-a/radio-1",
    ]
    morning, radio = emu.configuration_ids[:2]
    by_name = {i.name: i for i in emu.state.instances}
    assert by_name["studio-a/cam-2"].overrides == {
        "htmloverlay-1": {"url": "https://example.com/overlays/cam-2"},
        "switch-1": {"input": "inputstream-1"},
    }
    assert {i.outputs for i in emu.state.instances if i.configuration_id == morning} == {"LIVE"}
    assert {i.outputs for i in emu.state.instances if i.configuration_id == radio} == {"OFFLINE"}
    assert {a.instance_id for a in report.done if a.kind is K.LAUNCH} == {
        i.id for i in emu.state.instances
    }

    before = writes(emu)
    again = await client.apply(fleet)
    assert not again.plan.has_changes
    assert not again.changed
    assert [a.kind for a in again.plan.actions] == [K.KEEP, K.KEEP, K.KEEP]
    assert writes(emu) == before
    assert again.plan.cost_per_hour_now == again.plan.cost_per_hour_after == 1.17


async def test_changed_overrides_are_patched_and_prune_touches_only_the_owners(
    emu: Emulator, client: sr.StreamrunClient, tmp_path: Path
) -> None:
    await client.apply(sr.Fleet.from_file(EXAMPLE))
    morning = emu.configuration_ids[0]
    # Not this owner's: no prefix, another owner's prefix, a look-alike.
    await client.configurations.launch(
        morning,
        [sr.InstanceSettings(name=n) for n in ("cam-3", "studio-b/cam-3", "studio-ab/x")],
    )
    # The file wants Morning Show LIVE: so are the newcomers, or apply would set them.
    await client.configurations.set_outputs(morning, sr.Outputs.LIVE)
    text = EXAMPLE.read_text().replace("overlays/cam-1", "overlays/cam-1-v2")
    text = text[: text.index('[[configurations.instances]]\nname = "cam-2"')]
    text += '[[configurations]]\nname = "Lo-fi Radio"\n'
    fleet = sr.Fleet.from_file(write(tmp_path, text))

    kept = (await client.apply(fleet, dry_run=True)).plan
    assert [a.kind for a in kept.changes] == [K.UPDATE]
    assert kept.unpruned == 2  # cam-2 and radio-1 stay without --prune

    plan = (await client.apply(fleet, prune=True, dry_run=True)).plan
    update, *stops = plan.changes
    assert update.kind is K.UPDATE
    assert update.changes == {"htmloverlay-1": {"url": "https://example.com/overlays/cam-1-v2"}}
    assert sorted((a.kind, a.name) for a in stops) == [
        (K.STOP, "studio-a/cam-2"),
        (K.STOP, "studio-a/radio-1"),
    ]
    assert plan.cost_per_hour_now == 1.17  # three owned
    assert plan.cost_per_hour_after == 0.39

    report = await client.apply(fleet, prune=True)
    assert report.ok
    names = sorted(i.name or "" for i in emu.state.instances)
    assert names == ["cam-3", "studio-a/cam-1", "studio-ab/x", "studio-b/cam-3"]
    (cam1,) = [i for i in emu.state.instances if i.name == "studio-a/cam-1"]
    assert cam1.overrides == {"htmloverlay-1": {"url": "https://example.com/overlays/cam-1-v2"}}
    assert not (await client.apply(fleet, prune=True)).plan.has_changes


async def test_configuration_names_resolve_or_are_refused_before_any_write(
    emu: Emulator, client: sr.StreamrunClient, tmp_path: Path
) -> None:
    twin = (
        'owner = "o"\n\n[[configurations]]\nname = "Twin"\n\n'
        '[[configurations.instances]]\nname = "a"\n'
    )
    with pytest.raises(sr.FleetFileError) as ambiguous:
        await client.apply(sr.Fleet.from_file(write(tmp_path, twin)))
    assert ambiguous.value.line == 3
    assert "names 2 configurations" in str(ambiguous.value)
    for cfg in emu.configuration_ids[2:]:
        assert cfg in str(ambiguous.value)
    missing = twin.replace('"Twin"', '"Nope"')
    with pytest.raises(sr.FleetFileError, match="names no configuration"):
        await client.apply(sr.Fleet.from_file(write(tmp_path, missing)))
    both = twin.replace('name = "Twin"', f'id = "{emu.configuration_ids[0]}"')
    both += '\n[[configurations]]\nname = "Morning Show"\n'
    with pytest.raises(sr.FleetFileError, match="declared twice"):
        await client.apply(sr.Fleet.from_file(write(tmp_path, both)))
    assert writes(emu) == 0


async def test_a_failed_launch_is_in_the_report(
    emu: Emulator, client: sr.StreamrunClient, tmp_path: Path
) -> None:
    text = _GOOD.replace("cfg-1", emu.configuration_ids[0])
    text += 'overrides = { "nothere-1" = { x = 1 } }\n'
    report = await client.apply(sr.Fleet.from_file(write(tmp_path, text)))
    assert not report.ok
    ((action, error),) = report.failed
    assert action.kind is K.LAUNCH
    assert isinstance(error, sr.BadRequestError)
    assert emu.state.count() == 0


def test_plan_and_report_types_are_exported() -> None:
    for name in (
        "Fleet",
        "FleetAction",
        "FleetActionKind",
        "FleetConfiguration",
        "FleetFileError",
        "FleetInstance",
        "FleetPlan",
        "FleetReport",
    ):
        assert name in sr.__all__
        assert getattr(sr, name).__name__ == name


async def test_ttls_become_leases_of_a_guarded_client(emu: Emulator, tmp_path: Path) -> None:
    store = sr.SQLiteLeaseStore(tmp_path / "leases.sqlite3")
    guard = sr.Guard(owner="studio-a", store=store)
    fleet = sr.Fleet.from_file(EXAMPLE)
    async with emu.client(guard=guard, poll=FAST_POLL) as guarded:
        report = await guarded.apply(fleet)
        assert report.ok
        assert report.ttl_enforced
        leases = await store.leases("studio-a")
    by_name = {lease.name: lease for lease in leases}
    cam1 = by_name["studio-a/cam-1"]
    assert cam1.expires_at is not None
    assert cam1.expires_at - cam1.created_at == pytest.approx(4 * 3600, abs=5)
    # No ttl in the file, no deadline.
    assert by_name["studio-a/radio-1"].expires_at is None


async def test_without_a_guard_ttls_are_data_only(
    emu: Emulator, client: sr.StreamrunClient
) -> None:
    report = await client.apply(sr.Fleet.from_file(EXAMPLE))
    assert report.ok
    assert not report.ttl_enforced
    assert emu.state.count() == 3
