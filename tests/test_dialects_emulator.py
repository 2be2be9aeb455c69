"""The emulator's dialects over raw HTTP (no SDK): each knob does what it says, on every route."""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest
from conftest import RawAnswer, RawApi
from yarl import URL

from streamrun_async.testing import Dialect, Emulator, Fault

BOOT = 10.0


def emulator(dialect: Dialect | str, **options: Any) -> Emulator:
    return Emulator(clock="virtual", boot_time=BOOT, dialect=dialect, idle_timeout=None, **options)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as running:
        yield running


async def start(session: aiohttp.ClientSession, emu: Emulator) -> RawApi:
    await emu.start()
    return RawApi(session, emu)


@pytest.fixture
async def opened() -> AsyncIterator[list[Emulator]]:
    """Emulators a test started, closed after it."""
    started: list[Emulator] = []
    yield started
    for emu in started:
        await emu.close()


async def serve(
    session: aiohttp.ClientSession, opened: list[Emulator], dialect: Dialect | str, **options: Any
) -> RawApi:
    emu = emulator(dialect, **options)
    opened.append(emu)
    return await start(session, emu)


async def launch(api: RawApi, *names: str, cfg: int = 0) -> RawAnswer:
    body = None
    if names:
        settings = [{"name": n} for n in names]
        body = {"numberOfInstances": len(names), "instanceSettings": settings}
    path = f"/configurations/{api.emulator.configuration_ids[cfg]}/instances"
    answer = await api("POST", path, json=body)
    assert answer.status in (201, 202, 303), answer.body
    return answer


def unwrap(dialect: Dialect, key: str, body: Any) -> Any:
    """The object of a single-object answer."""
    if dialect.object_envelopes:
        assert list(body) == [key]
        return body[key]
    assert "id" in body or key == "overrides"
    return body


async def read_list(api: RawApi, path: str, key: str) -> list[dict[str, Any]]:
    """Every item of a list, page after page as the dialect links them, each page checked
    for the dialect's form."""
    dialect = api.emulator.dialect
    items: list[dict[str, Any]] = []
    url: str | None = path
    for _ in range(50):
        assert url is not None
        answer = await api("GET", url)
        assert answer.status in (200, 204), answer.body
        url = None
        if answer.status == 204:
            assert dialect.empty_list == "no_content"
            assert not items
            return items
        body = answer.json
        if body in (None, {}):
            assert dialect.empty_list in ("null", "object")
            assert not items
            return items
        if dialect.envelopes:
            assert isinstance(body, dict), body
            page = body[key]
            extra = set(body) - {key}
            assert extra <= {"next", "nextCursor"}
            if "next" in body:
                assert dialect.pagination == "field"
                url = body["next"].removeprefix("/api/v1")
            if "nextCursor" in body:
                assert dialect.pagination == "cursor"
                url = str(URL(path).with_query(cursor=body["nextCursor"]))
            if page is None:
                assert dialect.empty_list == "null_envelope"
                assert not items
                return items
        else:
            page = body
        assert isinstance(page, list), page
        assert page or dialect.empty_list == "envelope"  # else empty lists have their form
        items.extend(page)
        link = answer.headers.get("Link")
        if link is not None:
            assert dialect.pagination == "link"
            target = URL(link.split(";")[0].strip("<>"))
            assert target.is_absolute()
            assert target.host == "127.0.0.1"
            url = target.path_qs.removeprefix("/api/v1")
        if dialect.page_size is not None:
            assert len(page) <= dialect.page_size
        if url is None:
            return items
    raise AssertionError("more than 50 pages")


def check_timestamp(dialect: Dialect, value: object) -> None:
    form = dialect.timestamps
    if form in ("iso", "rfc1123"):
        assert isinstance(value, str), value
        assert value.endswith("Z" if form == "iso" else " GMT"), value
    else:
        assert type(value) is int, value
        assert (value > 10**11) == (form == "epoch_ms"), value


def spelled(dialect: Dialect, state: str) -> str:
    return state.lower() if dialect.state_case == "lower" else state


# -- the default -------------------------------------------------------------------------


async def test_observed_is_the_default(
    session: aiohttp.ClientSession, opened: list[Emulator]
) -> None:
    emu = Emulator(clock="virtual")
    opened.append(emu)
    api = await start(session, emu)
    assert emu.dialect == Dialect.observed()
    configurations = (await api("GET", "/configurations")).json
    assert list(configurations) == ["configurations"]
    first = configurations["configurations"][0]
    assert {
        "id": "htmloverlay-1",
        "title": "HTML overlay 1",
        "type": "htmloverlay",
        "settings": {"url": "https://example.com/overlay-1", "visible": True},
    } in first["elements"]
    output = next(e for e in first["elements"] if e["id"] == "outputstream-1")
    assert output["settings"] == {"destinations": [emu.destination_ids[0]], "outputs": "OFFLINE"}
    detail = (await api("GET", f"/configurations/{first['id']}")).json
    assert detail == first  # bare, not wrapped
    destinations = (await api("GET", "/destinations")).json["destinations"]
    assert [d["platform"] for d in destinations] == ["twitch", "youtube", "kick", "rtmp"]
    launched = await launch(api, "cam-1")
    assert launched.status == 201
    request = launched.json
    assert launched.headers["Location"] == f"/api/v1/instance-requests/{request['id']}"
    listed = (await api("GET", "/instances")).json["instances"]
    assert [i["state"] for i in listed] == ["QUEUED"]
    instance = (await api("GET", f"/instances/{request['instanceIds'][0]}")).json
    truth = emu.state.instances[0]
    assert set(instance) == {
        "id",
        "configurationId",
        "name",
        "status",
        "state",
        "streamkey",
        "requestId",
        "outputs",
        "createdAt",
        "overrides",
    }
    assert instance["status"] == "QUEUED"
    assert instance["streamkey"] == truth.stream_key
    assert instance["state"]["elements"][0] == {
        "id": "inputstream-1",
        "type": "inputstream",
        "state": {"streamkey": truth.stream_keys["inputstream-1"], "fps": 0.0},
    }
    assert [e["id"] for e in instance["state"]["elements"]] == list(
        emu._account.configurations[truth.configuration_id].elements
    )
    assert instance["state"]["elements"][1]["state"] == {}
    emu.set_input_fps(truth.id, "inputstream-1", 29.97)
    again = (await api("GET", f"/instances/{truth.id}")).json
    assert again["state"]["elements"][0]["state"]["fps"] == 29.97
    for bad in (math.nan, -1.0):
        with pytest.raises(ValueError, match="fps"):
            emu.set_input_fps(truth.id, "inputstream-1", bad)
    assert truth.stream_key not in repr(truth)
    assert truth.stream_key not in repr(emu.state)


# -- every preset, every route -------------------------------------------------------------


async def test_each_preset_is_served_alike_on_every_route(
    session: aiohttp.ClientSession, opened: list[Emulator], dialect: Dialect
) -> None:
    api = await serve(session, opened, dialect)
    emu = api.emulator
    await launch(api, "Alpha-Cam-Number-One", "b", "c")
    await launch(api, cfg=1)
    await emu.advance(BOOT + dialect.list_lag + dialect.request_lag)
    truth = emu.state
    lists = {
        "/configurations": ("configurations", list(emu.configuration_ids)),
        "/destinations": ("destinations", list(emu.destination_ids)),
        "/instances": ("instances", [i.id for i in truth.instances]),
        f"/configurations/{emu.configuration_ids[0]}/instances": (
            "instances",
            [i.id for i in truth.instances[:3]],
        ),
        f"/configurations/{emu.configuration_ids[2]}/instances": ("instances", []),
    }
    for path, (key, ids) in lists.items():
        items = await read_list(api, path, key)
        assert [i["id"] for i in items] == ids, path
        for item in items:
            if key != "destinations":  # the one list whose items have no createdAt
                check_timestamp(dialect, item["createdAt"])
            if key == "instances":
                assert item["state"] == spelled(dialect, "RUNNING")
                assert ("requestId" in item) == dialect.instance_request_id
                assert ("configurationId" in item) == dialect.instance_configuration_id
                assert ("name" in item) == (dialect.instance_names != "absent")
            if key == "destinations":
                assert ("platform" in item) == dialect.destination_platform
            if key == "configurations":
                assert ("elements" in item) == (not dialect.list_summaries)
    names = [i.get("name") for i in await read_list(api, "/instances", "instances")]
    expected = {
        "exact": ["Alpha-Cam-Number-One", "b", "c", None],
        "absent": [None] * 4,
        "lower": ["alpha-cam-number-one", "b", "c", None],
        "truncate": ["Alpha-Cam-Number-One"[: dialect.name_max_length], "b", "c", None],
    }[dialect.instance_names]
    assert names == expected
    assert [i.name for i in truth.instances] == ["Alpha-Cam-Number-One", "b", "c", None]
    configuration = unwrap(
        dialect,
        "configuration",
        (await api("GET", f"/configurations/{emu.configuration_ids[0]}")).json,
    )
    check_timestamp(dialect, configuration["createdAt"])
    elements = configuration["elements"]
    if dialect.elements_form == "object":
        assert list(elements) == ["inputstream-1", "htmloverlay-1", "switch-1", "outputstream-1"]
        assert "id" not in elements["switch-1"]
        shown = list(elements.values())
    else:
        assert [e["id"] for e in elements] == [
            "inputstream-1",
            "htmloverlay-1",
            "switch-1",
            "outputstream-1",
        ]
        shown = elements
    assert all(("settings" in e) == dialect.element_settings for e in shown)
    instance = unwrap(
        dialect, "instance", (await api("GET", f"/instances/{truth.instances[0].id}")).json
    )
    check_timestamp(dialect, instance["createdAt"])
    running = spelled(dialect, "RUNNING")
    if dialect.detail_state == "object":
        where = {
            "status": instance.get("status"),
            "state.status": instance["state"].get("status"),
            "state.state": instance["state"].get("state"),
        }
        assert where[dialect.status_field] == running
        assert [v for v in where.values() if v is not None] == [running]
        assert instance["streamkey"] == truth.instances[0].stream_key
    else:
        assert instance["state"] == running
        assert "streamkey" not in instance
    request = unwrap(
        dialect,
        "instanceRequest",
        (await api("GET", f"/instance-requests/{truth.requests[0].id}")).json,
    )
    assert request["state"] == running
    check_timestamp(dialect, request["createdAt"])
    overrides = (await api("GET", f"/instances/{truth.instances[0].id}/overrides")).json
    assert overrides == ({"overrides": {}} if dialect.object_envelopes else {})
    missing = await api("GET", "/instances/inst-nope")
    assert missing.status == 404
    if dialect.error_body == "text":
        assert missing.headers["Content-Type"].startswith("text/plain")
        assert missing.body == b"instance 'inst-nope' not found"
    else:
        assert missing.json == {
            "error": {"code": "not_found", "message": "instance 'inst-nope' not found"}
        }


# -- one knob at a time --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "status", "body"),
    [
        ("envelope", 200, b'{"instances": []}'),
        ("null", 200, b"null"),
        ("object", 200, b"{}"),
        ("null_envelope", 200, b'{"instances": null}'),
        ("no_content", 204, b""),
    ],
)
async def test_empty_list_forms(
    session: aiohttp.ClientSession, opened: list[Emulator], form: str, status: int, body: bytes
) -> None:
    api = await serve(session, opened, Dialect(empty_list=form))  # type: ignore[arg-type]
    for path in ("/instances", f"/configurations/{api.emulator.configuration_ids[0]}/instances"):
        answer = await api("GET", path)
        assert (answer.status, answer.body) == (status, body)
    await launch(api, "a")
    assert len((await api("GET", "/instances")).json["instances"]) == 1


@pytest.mark.parametrize("form", ["no_content", "json", "text_ok"])
async def test_stop_and_restart_answers(
    session: aiohttp.ClientSession, opened: list[Emulator], form: str
) -> None:
    api = await serve(session, opened, Dialect(stop_answer=form, restart_answer=form))  # type: ignore[arg-type]
    emu = api.emulator
    await launch(api, "a", "b", "c")
    await launch(api, "d", cfg=1)
    await emu.advance(BOOT)
    a, b, c, d = (i.id for i in emu.state.instances)
    answers = [
        await api("POST", f"/instances/{a}/restart"),
        await api("DELETE", f"/instances/{a}"),
        await api("DELETE", f"/configurations/{emu.configuration_ids[0]}/instances"),
        await api("DELETE", "/instances"),
    ]
    assert emu.state.instances == ()
    if form == "no_content":
        assert [(x.status, x.body) for x in answers] == [(204, b"")] * 4
    elif form == "text_ok":
        assert all((x.status, x.body) == (200, b"OK") for x in answers)
        assert all(x.headers["Content-Type"].startswith("text/plain") for x in answers)
    else:
        restarted, one, of_cfg, everything = (x.json for x in answers)
        assert (restarted["id"], restarted["status"]) == (a, "STARTING")
        assert (one["id"], one["state"]) == (a, "STOPPING")
        assert [(i["id"], i["state"]) for i in of_cfg["instances"]] == [
            (b, "STOPPING"),
            (c, "STOPPING"),
        ]
        assert [i["id"] for i in everything["instances"]] == [d]


@pytest.mark.parametrize(
    ("form", "status", "location", "body"),
    [
        ("created", 201, "relative", "request"),
        ("accepted", 202, "relative", "request"),
        ("see_other", 303, "relative", None),
        ("created_no_location", 201, None, "request"),
        ("accepted_no_location", 202, None, "request"),
        ("instance_body", 201, None, "instance"),
        ("absolute_location", 201, "absolute", "request"),
    ],
)
async def test_launch_answers(
    session: aiohttp.ClientSession,
    opened: list[Emulator],
    form: str,
    status: int,
    location: str | None,
    body: str | None,
) -> None:
    api = await serve(session, opened, Dialect(launch_answer=form))  # type: ignore[arg-type]
    emu = api.emulator
    for names in (("one",), ("two", "three")):
        answer = await launch(api, *names)
        request = emu.state.requests[-1]
        assert answer.status == status
        path = f"/api/v1/instance-requests/{request.id}"
        expected = {"relative": path, "absolute": f"{emu.url}{path}", None: None}[location]
        assert answer.headers.get("Location") == expected
        if body is None:
            assert answer.body == b""
        elif body == "request":
            assert answer.json["id"] == request.id
            assert answer.json["instanceIds"] == list(request.instance_ids)
        elif len(names) == 1:
            assert answer.json["id"] == request.instance_ids[0]
            assert answer.json["requestId"] == request.id
        else:
            made = answer.json["instances"]
            assert [i["id"] for i in made] == list(request.instance_ids)
            assert {i["requestId"] for i in made} == {request.id}


@pytest.mark.parametrize(
    ("status", "wording", "message"),
    [
        (400, "slots", "Not enough instance slots: 0 instance slots available, 1 requested"),
        (409, "free_slot", "No free instance slot"),
        (402, "free_slot", "No free instance slot"),
        (403, "maximum", "Maximum number of instances reached"),
    ],
)
@pytest.mark.parametrize("error_body", ["json", "text"])
async def test_no_capacity_answers(
    session: aiohttp.ClientSession,
    opened: list[Emulator],
    status: int,
    wording: str,
    message: str,
    error_body: str,
) -> None:
    dialect = Dialect(no_capacity_status=status, no_capacity_wording=wording, error_body=error_body)  # type: ignore[arg-type]
    api = await serve(session, opened, dialect, slot_limit=1)
    await launch(api)
    cfg = api.emulator.configuration_ids[0]
    refused = await api("POST", f"/configurations/{cfg}/instances")
    assert refused.status == status
    if error_body == "text":
        assert refused.body.decode() == message
    else:
        assert refused.error == ("no_capacity", message)
    assert api.emulator.state.count() == 1


async def test_text_errors_everywhere(
    session: aiohttp.ClientSession, opened: list[Emulator]
) -> None:
    api = await serve(session, opened, "text_answers")
    emu = api.emulator
    checks = [
        (await api("GET", "/instances", key="wrong"), 401, "invalid API key"),
        (await api("GET", "/nowhere"), 404, "Not Found: GET /api/v1/nowhere"),
        (await api("PATCH", "/instances"), 405, "Method Not Allowed"),
        (
            await api("POST", f"/configurations/{emu.configuration_ids[0]}/instances", data=b"{"),
            400,
            "request body is not valid JSON",
        ),
    ]
    emu.faults.script("GET /instances", [Fault.HTTP_503])
    checks.append((await api("GET", "/instances"), 503, "injected fault http_503"))
    for answer, status, text in checks:
        assert answer.status == status
        assert answer.headers["Content-Type"].startswith("text/plain")
        assert answer.body.decode().startswith(text)


async def test_pagination(session: aiohttp.ClientSession, opened: list[Emulator]) -> None:
    for name in ("paginated_link", "paginated_field", "paginated_cursor"):
        api = await serve(session, opened, name)
        await launch(api, *(f"cam-{n}" for n in range(7)))
        ids = [i.id for i in api.emulator.state.instances]
        assert [i["id"] for i in await read_list(api, "/instances", "instances")] == ids
        first = await api("GET", "/instances")
        page = first.json if name == "paginated_link" else first.json["instances"]
        assert len(page) == api.emulator.dialect.page_size
    negative = base64.urlsafe_b64encode(b"at:-4").decode()
    for cursor in ("nope", negative, "%FF"):
        bad = await api("GET", f"/instances?cursor={cursor}")
        assert bad.status == 400, cursor
        assert bad.error == ("invalid_request", "cursor is not one this server gave")
    field = RawApi(session, opened[1])
    for page in ("0", "-1", "x", "%C2%B2"):  # the last is a superscript two
        bad = await field("GET", f"/instances?page={page}")
        assert bad.status == 400, page
        assert bad.error[0] == "invalid_request"
    # Past the end: an empty page, as any list.
    assert (await field("GET", "/instances?page=5")).json == {"instances": []}


async def test_an_odd_host_header_is_a_400_where_an_absolute_url_needs_it(
    session: aiohttp.ClientSession, opened: list[Emulator]
) -> None:
    odd = {"Host": "127.0.0.1:notaport"}
    listed = await serve(session, opened, "paginated_link")
    await launch(listed, "a", "b", "c")
    refused = await listed("GET", "/instances", headers=odd)
    assert refused.status == 400
    assert refused.error == ("invalid_request", "the Host header is no valid host[:port]")
    assert (await listed("GET", "/openapi.json", headers=odd)).status == 400
    absolute = await serve(session, opened, "launch_absolute")
    cfg = absolute.emulator.configuration_ids[0]
    assert (await absolute("POST", f"/configurations/{cfg}/instances", headers=odd)).status == 400
    assert absolute.emulator.state.count() == 0  # refused before it launched anything


async def test_lagging_lists(session: aiohttp.ClientSession, opened: list[Emulator]) -> None:
    api = await serve(session, opened, "lagging_lists")
    emu = api.emulator
    request = (await launch(api, "late")).json
    instance_id = request["instanceIds"][0]
    cfg = emu.configuration_ids[0]
    assert emu.state.count() == 1  # it exists; reads do not show it yet
    assert (await api("GET", "/instances")).json == {"instances": []}
    assert (await api("GET", f"/configurations/{cfg}/instances")).json == {"instances": []}
    assert (await api("GET", f"/instances/{instance_id}")).status == 404
    assert (await api("GET", f"/instance-requests/{request['id']}")).status == 404
    await emu.advance(2.9)
    assert (await api("GET", "/instances")).json == {"instances": []}
    await emu.advance(0.1)
    assert [i["id"] for i in (await api("GET", "/instances")).json["instances"]] == [instance_id]
    assert (await api("GET", f"/instances/{instance_id}")).status == 200
    assert (await api("GET", f"/instance-requests/{request['id']}")).status == 200
    # Writes act at once, lag or not.
    second = (await launch(api, "gone")).json["instanceIds"][0]
    assert (await api("DELETE", f"/instances/{second}")).status == 204
    assert emu.state.count() == 1


async def test_list_lag_without_detail_lag(
    session: aiohttp.ClientSession, opened: list[Emulator]
) -> None:
    api = await serve(session, opened, Dialect(list_lag=5.0))
    request = (await launch(api, "x")).json
    assert (await api("GET", "/instances")).json == {"instances": []}
    assert (await api("GET", f"/instances/{request['instanceIds'][0]}")).status == 200
    assert (await api("GET", f"/instance-requests/{request['id']}")).status == 200


async def test_a_launch_stopped_before_lists_show_it_never_shows(
    session: aiohttp.ClientSession, opened: list[Emulator]
) -> None:
    api = await serve(session, opened, Dialect(list_lag=5.0, stopping_time=2.0))
    instance_id = (await launch(api, "brief")).json["instanceIds"][0]
    assert (await api("DELETE", f"/instances/{instance_id}")).status == 204
    assert [i.id for i in api.emulator.state.lingering] == [instance_id]
    cfg = api.emulator.configuration_ids[0]
    for path in ("/instances", f"/configurations/{cfg}/instances"):
        assert (await api("GET", path)).json == {"instances": []}, path


@pytest.mark.parametrize(
    ("preset", "timeline"),
    [
        # (seconds after the launch, request state, instance states)
        ("observed", [(0, "QUEUED", "QUEUED"), (BOOT, "RUNNING", "RUNNING")]),
        ("request_leads", [(0, "RUNNING", "STARTING"), (BOOT, "RUNNING", "RUNNING")]),
        (
            "request_lags",
            [
                (0, "QUEUED", "QUEUED"),
                (BOOT, "QUEUED", "RUNNING"),
                (BOOT + 5, "RUNNING", "RUNNING"),
            ],
        ),
    ],
)
async def test_request_timing(
    session: aiohttp.ClientSession,
    opened: list[Emulator],
    preset: str,
    timeline: list[tuple[float, str, str]],
) -> None:
    api = await serve(session, opened, preset)
    request = (await launch(api, "a", "b")).json
    at = 0.0
    for when, request_state, instance_state in timeline:
        await api.emulator.advance(when - at)
        at = when
        got = (await api("GET", f"/instance-requests/{request['id']}")).json
        assert got["state"] == request_state, when
        listed = (await api("GET", "/instances")).json["instances"]
        assert {i["state"] for i in listed} == {instance_state}, when
        assert api.emulator.state.request(request["id"]).state == request_state


async def test_a_request_is_judged_by_the_instances_left(
    session: aiohttp.ClientSession, opened: list[Emulator]
) -> None:
    api = await serve(session, opened, "observed", capacity=1)
    request = (await launch(api, "a", "b")).json
    first, queued = request["instanceIds"]
    assert (await api("DELETE", f"/instances/{queued}")).status == 204
    path = f"/instance-requests/{request['id']}"
    assert (await api("GET", path)).json["state"] == "QUEUED"
    await api.emulator.advance(BOOT)
    assert (await api("GET", path)).json["state"] == "RUNNING"
    assert [i.id for i in api.emulator.state.instances] == [first]


async def test_stopped_instances_linger(
    session: aiohttp.ClientSession, opened: list[Emulator]
) -> None:
    api = await serve(session, opened, "stops_linger")
    emu = api.emulator
    await launch(api, "a", "b")
    await emu.advance(BOOT)
    a, b = (i.id for i in emu.state.instances)
    assert (await api("DELETE", f"/instances/{a}")).status == 204
    assert [i.id for i in emu.state.instances] == [b]
    assert [i.id for i in emu.state.lingering] == [a]

    async def shown() -> list[tuple[str, str]]:
        return [(i["id"], i["state"]) for i in (await api("GET", "/instances")).json["instances"]]

    assert await shown() == [(a, "STOPPING"), (b, "RUNNING")]
    assert (await api("GET", f"/instances/{a}")).json["status"] == "STOPPING"
    assert (await api("DELETE", f"/instances/{a}")).status == 204  # already stopping: fine
    assert (await api("POST", f"/instances/{a}/restart")).status == 409
    assert (await api("PATCH", f"/instances/{a}/overrides", json={})).status == 409
    await emu.advance(2)
    assert await shown() == [(a, "STOPPED"), (b, "RUNNING")]
    await emu.advance(3)
    assert await shown() == [(b, "RUNNING")]
    assert (await api("GET", f"/instances/{a}")).status == 404
    assert emu.state.lingering == ()
    assert emu.billing.seconds[a] == 0  # billing ended at the stop, not with the linger


async def test_failures(session: aiohttp.ClientSession, opened: list[Emulator]) -> None:
    api = await serve(session, opened, "stops_linger", fail_rate=1.0)
    emu = api.emulator
    request = (await launch(api, "doomed")).json
    await emu.advance(BOOT)
    (failed,) = emu.state.lingering
    assert failed.state == "ERROR"  # this preset's spelling of a failure
    assert emu.state.instances == ()
    assert emu.state.stopped[-1].reason == "failed"
    assert [i["state"] for i in (await api("GET", "/instances")).json["instances"]] == ["ERROR"]
    assert (await api("GET", f"/instance-requests/{request['id']}")).json["state"] == "ERROR"
    await emu.advance(3600)
    assert (await api("GET", f"/instances/{failed.id}")).json["status"] == "ERROR"  # until deleted
    assert emu.billing.total == 0
    assert (await api("DELETE", f"/instances/{failed.id}")).status == 204
    assert (await api("GET", "/instances")).json == {"instances": []}


async def test_scripted_failure_and_seeded_rates(
    session: aiohttp.ClientSession, opened: list[Emulator]
) -> None:
    api = await serve(session, opened, "observed")
    emu = api.emulator
    request = (await launch(api, "a", "b")).json
    emu.fail_instance(request["instanceIds"][0])
    await emu.advance(BOOT)
    # One failed, one runs: the request runs.
    assert (await api("GET", f"/instance-requests/{request['id']}")).json["state"] == "RUNNING"
    states = [i["state"] for i in (await api("GET", "/instances")).json["instances"]]
    assert states == ["FAILED", "RUNNING"]
    with pytest.raises(KeyError):
        emu.fail_instance(request["instanceIds"][0])  # no longer live

    async def outcome(seed: int) -> list[str]:
        emu = emulator("classic", fail_rate=0.5, seed=seed)
        await emu.start()
        try:
            emu_api = RawApi(session, emu)
            await launch(emu_api, *(f"i{n}" for n in range(20)))
            await emu.advance(BOOT)
            return [i["state"] for i in (await emu_api("GET", "/instances")).json]
        finally:
            await emu.close()

    first = await outcome(1)
    assert first == await outcome(1)
    assert {"FAILED", "RUNNING"} == set(first)
    with pytest.raises(ValueError, match="fail_rate"):
        Emulator(fail_rate=1.5)


async def test_booting_state(session: aiohttp.ClientSession, opened: list[Emulator]) -> None:
    api = await serve(session, opened, Dialect(booting_state="STARTING"), capacity=1)
    await launch(api, "a", "b")
    states = [i["state"] for i in (await api("GET", "/instances")).json["instances"]]
    assert states == ["STARTING", "QUEUED"]  # a server for the first; the second waits


def test_invalid_dialects_are_refused() -> None:
    with pytest.raises(ValueError, match="go together"):
        Dialect(page_size=2)
    with pytest.raises(ValueError, match="needs envelopes"):
        Dialect(envelopes=False, page_size=2, pagination="field")
    with pytest.raises(ValueError, match="needs envelopes"):
        Dialect(envelopes=False, empty_list="null_envelope")
    with pytest.raises(ValueError, match="'state_case' must be in"):
        Dialect(state_case="title")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        Dialect(list_lag=-1)
    with pytest.raises(ValueError, match="presets are: observed, classic"):
        Dialect.named("nope")
    with pytest.raises(ValueError, match="no dialect preset"):
        Emulator(dialect="nope")
    assert Dialect.named("text_answers") == Dialect.text_answers()
    assert attrs.evolve(Dialect.observed(), page_size=2, pagination="link").page_size == 2
    assert repr(Dialect.classic()) == (
        "<Dialect classic: envelopes=False, element_settings=False, detail_state='string'>"
    )
    assert repr(Dialect.observed()) == "<Dialect observed>"


@pytest.mark.streamrun_emulator(dialect="text_answers", capacity=1)
async def test_the_plugin_marker_takes_a_dialect(streamrun_emulator: Emulator) -> None:
    assert streamrun_emulator.dialect == Dialect.text_answers()
    assert streamrun_emulator.dialect.name == "text_answers"


pytest_plugins = ("pytester",)


def test_plugin_markers_add_up(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        """
        import pytest
        from streamrun_async.testing import Dialect

        pytestmark = pytest.mark.streamrun_emulator(dialect=Dialect.paginated_link(), boot_time=1)

        @pytest.mark.streamrun_emulator(boot_time=7)
        async def test_closest_wins(streamrun_emulator, streamrun_client):
            assert streamrun_emulator.dialect.name == "paginated_link"
            cfg = streamrun_emulator.configuration_ids[0]
            request = await streamrun_client.configurations.launch(cfg)
            await streamrun_emulator.advance(6)
            assert streamrun_emulator.state.request(request.id).state == "QUEUED"
            await streamrun_emulator.advance(1)
            assert streamrun_emulator.state.request(request.id).state == "RUNNING"
        """
    )
    pytester.runpytest_inprocess("--strict-markers").assert_outcomes(passed=1)


async def test_served_concurrently(session: aiohttp.ClientSession, opened: list[Emulator]) -> None:
    """Pages read while instances stop stay well-formed (offsets may shift, as on any
    server paging by offset)."""
    api = await serve(session, opened, "paginated_field")
    await launch(api, *(f"c{n}" for n in range(9)))
    ids = [i.id for i in api.emulator.state.instances]
    reads = [read_list(api, "/instances", "instances") for _ in range(3)]
    stops = [api("DELETE", f"/instances/{i}") for i in ids[:3]]
    results = await asyncio.gather(*reads, *stops)
    for items in results[:3]:
        assert {i["id"] for i in items} <= set(ids)
