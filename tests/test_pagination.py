"""Lists spread over pages: followed whole, or refused whole with IncompleteListError."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from conftest import API_KEY, LocalServer

import streamrun_async as sr
from streamrun_async._http import MAX_PAGES

Server = Callable[..., Awaitable[LocalServer]]
FAST = sr.RetryPolicy.for_testing()


def item(n: int) -> dict[str, Any]:
    return {"id": f"inst-{n}", "state": "RUNNING", "configurationId": "cfg-1"}


def paged(total: int, size: int, style: str, *, absolute: str = "") -> Any:
    """A handler serving ``total`` instances ``size`` a page, the next page named by ``style``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        key = "cursor" if style in ("cursor", "nextCursor") else "page"
        start = int(request.query.get(key, "0").removeprefix("c"))
        items = [item(n) for n in range(start, min(start + size, total))]
        after = start + size
        body: dict[str, Any] = {"instances": items}
        headers = {}
        if after < total:
            path = f"{request.path}?page={after}"
            if style == "link":
                headers["Link"] = f'<{absolute}{path}>; rel="next", </x?page=0>; rel="first"'
            elif style == "link-multi-rel":
                headers["Link"] = f'<{path}>; rel="last next"'
            elif style == "next-path":
                body["next"] = f"{absolute}{path}"
            elif style == "nextPage-relative":
                body["nextPage"] = f"instances?page={after}"
            elif style == "nextPage-int":
                body["nextPage"] = after
            elif style == "cursor":
                body["next"] = f"c{after}"
            elif style == "nextCursor":
                body["nextCursor"] = f"c{after}"
        else:
            body["next"] = None
        return web.json_response(body, headers=headers)

    return handler


STYLES = [
    "link",
    "link-multi-rel",
    "next-path",
    "nextPage-relative",
    "nextPage-int",
    "cursor",
    "nextCursor",
]


@pytest.mark.parametrize("style", STYLES)
async def test_every_page_is_read_as_one_list(local_server: Server, style: str) -> None:
    server = await local_server(paged(25, 10, style))
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        instances = await c.instances.list()
    assert [i.id for i in instances] == [f"inst-{n}" for n in range(25)]
    assert len(server.requests) == 3


async def test_an_absolute_next_link_on_the_same_host_is_followed(local_server: Server) -> None:
    server = await local_server()
    server.handler = paged(15, 10, "link", absolute=server.url)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        assert len(await c.instances.list()) == 15


async def test_configuration_instances_and_other_lists_paginate(local_server: Server) -> None:
    server = await local_server(paged(12, 5, "next-path"))
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        assert len(await c.configurations.list_instances("cfg-1")) == 12
    assert server.requests[1][1] == "/api/v1/configurations/cfg-1/instances?page=5"


async def test_an_item_on_two_pages_is_kept_once(local_server: Server) -> None:
    pages = {
        "0": ({"instances": [item(0), item(1)], "next": "?page=1"}),
        "1": ({"instances": [{**item(1), "state": "STOPPING"}, item(2)]}),
    }

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(pages[request.query.get("page", "0")])

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        instances = await c.instances.list()
    assert [i.id for i in instances] == ["inst-0", "inst-1", "inst-2"]
    assert instances[1].state is sr.InstanceState.STOPPING


async def test_raw_items_are_the_pages_merged_and_the_list_decodes_them(
    local_server: Server,
) -> None:
    later = {**item(1), "state": "STOPPING", "unmodelled": [1, 2]}
    pages = {
        "0": ({"instances": [item(0), item(1), {"name": "no id"}], "next": "?page=1"}),
        "1": ({"instances": [later, item(2)]}),
    }

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(pages[request.query.get("page", "0")])

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        raw = await c._transport.get_items(["instances"], sr.Instance, "instances")
        instances = await c.instances.list()
    # The later page's copy of an item wins, in the place the item first showed.
    assert raw == [item(0), later, {"name": "no id"}, item(2)]
    assert [i.raw for i in instances] == [item(0), later, item(2)]
    assert len(server.requests) == 4  # two calls, each page once


async def test_stream_keys_on_a_later_page_are_scrubbed_from_errors(local_server: Server) -> None:
    secret = "page_two_key_5e6f7a8b9c"

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return web.Response(status=500, text=f"restart failed for key {secret}")
        if request.query.get("page") == "1":
            return web.json_response({"instances": [{**item(1), "streamkey": secret}]})
        return web.json_response({"instances": [item(0)], "next": "?page=1"})

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        assert len(await c.instances.list()) == 2
        with pytest.raises(sr.APIStatusError) as info:
            await c.instances.restart("inst-1")
    text = f"{info.value} {info.value!r} {getattr(info.value, 'body', None)!r}"
    assert secret not in text
    assert "[REDACTED]" in text


async def test_a_next_link_to_another_host_is_refused(local_server: Server) -> None:
    other = await local_server(paged(5, 10, "link"))
    server = await local_server(paged(15, 10, "link", absolute=other.url))
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        with pytest.raises(sr.IncompleteListError, match="another host") as info:
            await c.instances.list()
    # The key never went to the other host.
    assert other.requests == []
    assert (info.value.pages_read, info.value.items_read) == (1, 10)
    assert isinstance(info.value, sr.APIError)


async def test_a_list_of_more_than_the_page_limit_is_refused(local_server: Server) -> None:
    server = await local_server(paged(10_000, 1, "link"))
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        with pytest.raises(sr.IncompleteListError, match=f"more than {MAX_PAGES} pages"):
            await c.instances.list()
    assert len(server.requests) == MAX_PAGES == 100


async def test_a_next_link_that_repeats_a_page_is_refused(local_server: Server) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"instances": [item(0)], "next": "/api/v1/instances"})

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        with pytest.raises(sr.IncompleteListError, match="repeats"):
            await c.instances.list()
    assert len(server.requests) == 1


async def test_a_later_page_is_retried_under_the_same_policy(local_server: Server) -> None:
    pages = paged(20, 10, "link")
    failures = [503, 502]

    async def handler(request: web.Request) -> web.StreamResponse:
        if "page" in request.query and failures:
            return web.json_response({"error": "busy"}, status=failures.pop(0))
        return await pages(request)

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        assert len(await c.instances.list()) == 20
    assert len(server.requests) == 4


async def test_a_later_page_that_fails_raises_incomplete_list(local_server: Server) -> None:
    pages = paged(30, 10, "link")

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.query.get("page") == "20":
            return web.json_response(
                {"error": "slow down"}, status=429, headers={"Retry-After": "7"}
            )
        return await pages(request)

    server = await local_server(handler)
    async with sr.StreamrunClient(
        API_KEY, base_url=server.url, retry=sr.RetryPolicy.disabled()
    ) as c:
        with pytest.raises(sr.IncompleteListError) as info:
            await c.instances.list()
    error = info.value
    assert (error.pages_read, error.items_read) == (2, 20)
    assert error.retry_after == 7.0
    assert isinstance(error.__cause__, sr.RateLimitError)
    assert "page 3" in str(error)


async def test_a_first_page_that_fails_raises_its_own_error(local_server: Server) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "no such key"}, status=401)

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        with pytest.raises(sr.AuthenticationError):
            await c.instances.list()


@pytest.mark.parametrize(
    ("status", "body"),
    [(204, None), (200, None), (200, "null"), (200, '{"instances": null, "next": null}')],
)
async def test_an_empty_list_in_any_form_is_empty(
    local_server: Server, status: int, body: str | None
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=body, content_type="application/json")

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        assert await c.instances.list() == []
        assert await c.destinations.list() == []


async def test_a_next_object_with_an_href_is_followed(local_server: Server) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if "page" in request.query:
            return web.json_response({"instances": [item(1)], "next": {"rel": "next"}})
        return web.json_response({"instances": [item(0)], "next": {"href": "?page=1"}})

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        with pytest.raises(sr.IncompleteListError, match="cannot follow"):
            # Page 2 names a next page in no followable form: more may exist.
            await c.instances.list()
    assert [path for _, path in server.requests] == [
        "/api/v1/instances",
        "/api/v1/instances?page=1",
    ]


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, {"instances": [], "next": True}),
        ({}, {"instances": [], "nextCursor": ["a"]}),
        ({"Link": '<http://127.0.0.1:notaport/x>; rel="next"'}, {"instances": []}),
    ],
    ids=["next-true", "cursor-list", "link-not-a-url"],
)
async def test_a_next_page_that_cannot_be_followed_is_incomplete(
    local_server: Server, headers: dict[str, str], body: Any
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, headers=headers)

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        with pytest.raises(sr.IncompleteListError) as info:
            await c.instances.list()
    assert info.value.pages_read == 1
    assert len(server.requests) == 1


@pytest.mark.parametrize("end", [None, False, "", {"href": ""}])
async def test_an_empty_next_field_ends_the_list(local_server: Server, end: Any) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"instances": [item(0)], "next": end, "nextPage": None})

    server = await local_server(handler)
    async with sr.StreamrunClient(API_KEY, base_url=server.url, retry=FAST) as c:
        assert len(await c.instances.list()) == 1
