"""``streamrun probe``: what the API answers, as shapes without values, for bug reports.

It makes only read-only calls (configurations list and one detail, destinations,
instances list and one detail when any exist, one instance request with ``--request``)
and reports, per call: the status, content type, Link relations, envelope keys, each
field's name and JSON type, and every place where the answer differs from what the SDK
expects, including what the SDK's own decoder makes of it. No value is printed: ids,
names, URLs and keys become their type; only words of enum-like fields (``state``,
``status``, ``outputs``, ``platform``, ``type``) are shown, since unknown states are
what a bug report most needs. Keys that may be ids (with digits or dashes, or under
``overrides``) are masked too.

The shape analysis is pure (``call_report``), the I/O one function (``run_probe``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import click

from streamrun_async import (
    APIStatusError,
    AuthenticationError,
    Configuration,
    Destination,
    Instance,
    InstanceRequest,
    InstanceState,
    StreamrunClient,
    StreamrunError,
)
from streamrun_async._converter import decode_list, decode_object
from streamrun_async._http import API_PREFIX, Response, path_segment

from ._runtime import Runtime, call

__all__ = ["EXPECTED", "Probe", "call_report", "describe", "probe"]

_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number"}
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z_]{0,40}")
_ENUM_FIELDS = frozenset({"state", "status", "outputs", "platform", "type"})
_ENUM_WORD = re.compile(r"[A-Za-z_]{1,24}")
_MAP_FIELDS = frozenset({"overrides"})
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_RFC1123 = re.compile(r"[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2}")
_URL = re.compile(r"[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_LINK_REL = re.compile(r"<([^>]*)>[^,]*?rel=\"?([^\";,]+)")
_PAGE_FIELDS = ("next", "nextPage", "nextCursor")
_MAX_DEPTH = 8

# The wire fields the SDK reads, with the JSON types it expects (``a|b``: either).
EXPECTED: Mapping[str, Mapping[str, str]] = {
    "Configuration": {
        "id": "string",
        "name": "string",
        "elements": "array|object",
        "createdAt": "string|integer|number",
    },
    "Destination": {"id": "string", "name": "string", "platform": "string"},
    "Instance": {
        "id": "string",
        "state": "string|object",
        "configurationId": "string",
        "name": "string",
        "requestId": "string",
        "outputs": "string",
        "createdAt": "string|integer|number",
        "overrides": "object",
    },
    "InstanceRequest": {
        "id": "string",
        "state": "string",
        "configurationId": "string",
        "instanceIds": "array",
        "numberOfInstances": "integer",
        "createdAt": "string|integer|number",
    },
}
# Read when present, so never reported absent.
_OPTIONAL: Mapping[str, Mapping[str, str]] = {
    "Instance": {"status": "string|object", "streamkey": "string"},
}
_MODELS: Mapping[str, type[Any]] = {
    "Configuration": Configuration,
    "Destination": Destination,
    "Instance": Instance,
    "InstanceRequest": InstanceRequest,
}


def _string_type(text: str, field: str) -> str:
    """``string`` with a hint of its form, never its content (except enum-like words)."""
    if field in _ENUM_FIELDS and _ENUM_WORD.fullmatch(text):
        return f"string({text})"
    if _ISO.match(text):
        return "string(iso8601)"
    if _RFC1123.match(text):
        return "string(rfc1123)"
    if _URL.match(text):
        return "string(url)"
    if not text:
        return "string(empty)"
    return "string"


def _number_type(value: float, field: str) -> str:
    """``integer``/``number``, with an epoch hint for timestamp-like fields."""
    kind = "integer" if isinstance(value, int) or float(value).is_integer() else "number"
    if field.endswith("At") or field in ("created", "updated", "timestamp"):
        if 1e9 <= value < 1e10:
            return f"{kind}(epoch-seconds)"
        if 1e12 <= value < 1e13:
            return f"{kind}(epoch-milliseconds)"
    return "number" if not isinstance(value, int) else "integer"


def json_type(value: Any) -> str:
    """The JSON type name of a value."""
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _key(key: str, parent: str) -> str:
    """A field name as printed: ids and other values used as keys are masked."""
    if parent in _MAP_FIELDS or not _FIELD_NAME.fullmatch(key):
        return "<key>"
    return key


def describe(
    value: Any, path: str = "", out: dict[str, set[str]] | None = None
) -> dict[str, set[str]]:
    """Every field path under ``value`` with the set of types seen there.

    ``a.b`` for object fields, ``a[]`` for array items; values become types.
    """
    found: dict[str, set[str]] = {} if out is None else out
    field = path.rsplit(".", 1)[-1].removesuffix("[]")
    if isinstance(value, Mapping):
        if path:
            found.setdefault(path, set()).add("object")
        if path.count(".") < _MAX_DEPTH:
            for key, item in value.items():
                name = _key(str(key), field)
                describe(item, f"{path}.{name}" if path else name, found)
    elif isinstance(value, list):
        if path:
            found.setdefault(path, set()).add("array")
        for item in value:
            describe(item, f"{path}[]", found)
    elif isinstance(value, str):
        found.setdefault(path or "(body)", set()).add(_string_type(value, field))
    elif isinstance(value, bool) or value is None:
        found.setdefault(path or "(body)", set()).add(json_type(value))
    elif isinstance(value, (int, float)):
        found.setdefault(path or "(body)", set()).add(_number_type(value, field))
    return found


@attrs.define
class Probe:
    """What to call and how the SDK reads it: the list's envelope, or a detail's model."""

    label: str
    segments: list[str]
    model: str
    envelope: str
    is_list: bool = False


def _items(data: Any, envelope: str) -> tuple[list[Any] | None, str | None]:
    """The list items of a list answer, and where they were found."""
    if isinstance(data, list):
        return data, "bare array"
    if isinstance(data, Mapping):
        if isinstance(data.get(envelope), list):
            return data[envelope], f"under {envelope!r}"
        lists = [key for key, item in data.items() if isinstance(item, list)]
        if len(lists) == 1:
            return data[lists[0]], "under another key"
    return None, None


def _base_type(label: str) -> str:
    return label.split("(", 1)[0].split("[", 1)[0]


def _field_differences(
    fields: Mapping[str, set[str]], model: str, count: int, present: Mapping[str, int]
) -> list[str]:
    """Expected fields missing or of another type, odd states and timestamps, extra fields."""
    notes: list[str] = []
    optional = _OPTIONAL.get(model, {})
    expected = {**EXPECTED[model], **optional}
    for name, wanted in expected.items():
        seen = present.get(name, 0)
        if seen == 0 and name not in optional:
            notes.append(f"{name}: absent (the SDK leaves it unset)")
        if seen == 0:
            continue
        if seen < count and name not in optional:
            notes.append(f"{name}: absent in {count - seen} of {count} item(s)")
        labels = fields.get(name, set())
        allowed = {*wanted.split("|"), "null"}
        if "integer" in allowed:
            allowed.add("number")
        odd = sorted({_base_type(label) for label in labels} - allowed)
        if odd:
            notes.append(
                f"{name}: {'/'.join(odd)} where the SDK expects {wanted} "
                "(read as unset; the value stays in .raw)"
            )
    for name in ("state", "status"):
        for label in sorted(fields.get(name, set())):
            word = label[len("string(") : -1] if label.startswith("string(") else None
            if word and word not in ("iso8601", "rfc1123", "url", "empty"):
                if InstanceState(word).is_unknown:
                    notes.append(f"{name}: {word!r} is a state this SDK does not know (kept)")
                elif word != word.upper():
                    notes.append(f"{name}: {word!r} is not upper case (the SDK reads any case)")
    stamps = fields.get("createdAt", set()) - {"string(iso8601)", "null"}
    if stamps:
        notes.append(
            f"createdAt: {', '.join(sorted(stamps))}, not ISO 8601 "
            "(the SDK also reads epoch seconds, milliseconds and RFC 1123)"
        )
    extra = sorted({path.split(".", 1)[0].split("[", 1)[0] for path in fields} - set(expected))
    if extra:
        notes.append(f"not modelled by the SDK (kept in .raw): {', '.join(extra)}")
    return notes


def _decode_note(probe: Probe, data: Any, count: int | None) -> list[str]:
    """What the SDK's decoder makes of the answer: items dropped, or a failure."""
    cls = _MODELS[probe.model]
    try:
        if not probe.is_list:
            decode_object(data, cls, probe.envelope)
            return []
        decoded = decode_list(data, cls, probe.envelope)
    except Exception as error:  # any failure of the decoder is what the report is for
        # Its message may quote the body: only the error's type is shown.
        return [f"the SDK cannot decode this answer ({type(error).__name__})"]
    if count is not None and len(decoded) < count:
        return [f"the SDK drops {count - len(decoded)} of {count} item(s) (no usable id)"]
    return []


def _links(link_values: Sequence[str]) -> list[str]:
    """``rel`` of each Link, with whether its target is relative or absolute."""
    return [
        f"{rel} ({'absolute' if _URL.match(target) else 'relative'})"
        for value in link_values
        for target, rel in _LINK_REL.findall(value)
    ]


def _fields_of(objects: Sequence[Any]) -> tuple[dict[str, set[str]], dict[str, int], int]:
    """The fields of ``objects`` with their types, how often each key is present, and
    how many objects lack a string id."""
    fields: dict[str, set[str]] = {}
    present: dict[str, int] = {}
    no_id = 0
    for item in objects:
        if not isinstance(item, Mapping):
            no_id += 1
            continue
        if not isinstance(item.get("id"), str):
            no_id += 1
        for key in item:
            name = _key(str(key), "")
            present[name] = present.get(name, 0) + 1
        describe(item, "", fields)
    return fields, present, no_id


def _list_notes(probe: Probe, data: Any, report: dict[str, Any]) -> list[Any] | None:
    """Where a list answer keeps its items, and its pagination fields."""
    notes: list[str] = report["differences"]
    items, where = _items(data, probe.envelope)
    if items is None:
        shown = "null" if data is None else json_type(data)
        notes.append(f"no list of items: the body is {shown} (the SDK reads it as empty)")
        return None
    report["items"] = len(items)
    if where == "bare array":
        notes.append(f"a bare array, not {{{probe.envelope!r}: [...]}} (the SDK reads both)")
    elif where == "under another key":
        notes.append(f"the items are not under {probe.envelope!r}")
    if isinstance(data, Mapping):
        for key in _PAGE_FIELDS:
            if data.get(key) is not None:
                notes.append(f"pagination field {key!r}: the SDK follows it")
    return items


def call_report(
    probe: Probe,
    *,
    status: int,
    content_type: str | None,
    link_values: Sequence[str],
    data: Any,
    error: str | None = None,
) -> dict[str, Any]:
    """The shape report of one answer: pure, and no value is copied into it."""
    report: dict[str, Any] = {
        "call": f"GET {API_PREFIX}/{probe.label}",
        "status": status,
        "content_type": content_type,
        "links": _links(link_values),
        "body": None,
        "envelope_keys": [],
        "items": None,
        "fields": {},
        "differences": [],
    }
    notes: list[str] = report["differences"]
    if error is not None:
        notes.append(f"answered {status} ({error})")
        return report
    report["body"] = json_type(data)
    if status != 200:
        notes.append(f"answered {status} where 200 is usual")
    if content_type is not None and not content_type.startswith("application/json"):
        notes.append(f"content type {content_type} (the SDK parses the body as JSON anyway)")
    if report["links"]:
        notes.append("paginated by Link header: the SDK follows rel=next (same host, 100 pages)")
    if isinstance(data, Mapping):
        report["envelope_keys"] = [_key(str(key), "") for key in data]
    count: int | None = None
    if probe.is_list:
        objects = _list_notes(probe, data, report)
        count = None if objects is None else len(objects)
    else:
        body = data
        if isinstance(data, Mapping) and isinstance(data.get(probe.envelope), Mapping):
            notes.append(f"wrapped as {{{probe.envelope!r}: ...}} (the SDK reads both)")
            body = data[probe.envelope]
        objects = [body]
        if not isinstance(body, Mapping):
            notes.append(f"the body is {json_type(body)}, not an object")
            objects = None
    if objects:
        fields, present, no_id = _fields_of(objects)
        report["fields"] = {name: sorted(kinds) for name, kinds in sorted(fields.items())}
        if no_id:
            notes.append(f"{no_id} item(s) without a string id")
        notes += _field_differences(fields, probe.model, len(objects), present)
    notes += _decode_note(probe, data, count)
    return report


def _first_id(data: Any, envelope: str) -> str | None:
    items, _ = _items(data, envelope)
    for item in items or []:
        if isinstance(item, Mapping) and isinstance(item.get("id"), str) and item["id"]:
            return str(item["id"])
    return None


async def run_probe(client: StreamrunClient, request_id: str | None) -> list[dict[str, Any]]:
    """Make the read-only calls, one after another, and report each."""
    reports: list[dict[str, Any]] = []

    async def one(probe: Probe) -> Any:
        started = time.monotonic()
        try:
            response: Response = await client._transport.request("GET", probe.segments)
        except AuthenticationError:
            raise  # a wrong key: the usual error line says so
        except APIStatusError as error:
            reports.append(
                call_report(
                    probe,
                    status=error.status,
                    content_type=None,
                    link_values=(),
                    data=None,
                    error=type(error).__name__,
                )
            )
            return None
        report = call_report(
            probe,
            status=response.status,
            content_type=response.headers.get("Content-Type"),
            link_values=response.headers.getall("Link", []),
            data=response.data,
        )
        report["seconds"] = round(time.monotonic() - started, 2)
        reports.append(report)
        return response.data

    configs = await one(
        Probe("configurations", ["configurations"], "Configuration", "configurations", True)
    )
    if (cfg := _first_id(configs, "configurations")) is not None:
        segments = ["configurations", path_segment(cfg, "configuration_id")]
        await one(
            Probe("configurations/{configurationId}", segments, "Configuration", "configuration")
        )
    await one(Probe("destinations", ["destinations"], "Destination", "destinations", True))
    listed = await one(Probe("instances", ["instances"], "Instance", "instances", True))
    if (inst := _first_id(listed, "instances")) is not None:
        segments = ["instances", path_segment(inst, "instance_id")]
        await one(Probe("instances/{instanceId}", segments, "Instance", "instance"))
    if request_id is not None:
        segment = path_segment(request_id, "request_id")
        await one(
            Probe(
                "instance-requests/{requestId}",
                ["instance-requests", segment],
                "InstanceRequest",
                "instanceRequest",
            )
        )
    return reports


def _version() -> str:
    import streamrun_async

    return str(streamrun_async.__version__)


def render_text(reports: Sequence[Mapping[str, Any]], base_url: str, default_url: str) -> str:
    """The report for people: one block per call, then a one-line summary."""
    default = base_url.rstrip("/") == default_url
    where = f"the default ({default_url})" if default else "another (not shown)"
    lines = [
        "streamrun probe: read-only calls; every value is replaced by its type",
        f"sdk: streamrun-async {_version()}; base URL: {where}",
    ]
    total = 0
    for report in reports:
        lines.append("")
        lines.append(report["call"])
        links = ", ".join(report["links"]) or "none"
        lines.append(
            f"  status {report['status']}, content type {report['content_type'] or '-'}, "
            f"Link: {links}"
        )
        if report["body"] is not None:
            keys = ", ".join(report["envelope_keys"])
            body = f"  body: {report['body']}" + (f" with keys {keys}" if keys else "")
            if report["items"] is not None:
                body += f"; {report['items']} item(s)"
            lines.append(body)
        if report["fields"]:
            lines.append("  fields:")
            width = max(len(name) for name in report["fields"])
            for name, kinds in report["fields"].items():
                lines.append(f"    {name.ljust(width)}  {' | '.join(kinds)}")
        differences = report["differences"]
        total += len(differences)
        if differences:
            lines.append("  differs from what the SDK expects:")
            lines += [f"    - {note}" for note in differences]
        else:
            lines.append("  as the SDK expects")
    lines.append("")
    lines.append(f"{total} difference(s) in {len(reports)} call(s)")
    return "\n".join(lines)


@click.command(short_help="Report the shapes the API answers with (no values), for bug reports.")
@click.option(
    "--request",
    "request_id",
    metavar="ID",
    help="Also read this instance request (GET /instance-requests/ID).",
)
@click.pass_obj
def probe(rt: Runtime, request_id: str | None) -> None:
    """Call read-only endpoints and report each answer's shape, without its values.

    \b
    Status codes, content types, Link headers, envelope keys, every field's name and
    JSON type, and where the answer differs from what the SDK expects. Ids, names,
    URLs and keys are replaced by their type: attach the output to a bug report.
    Nothing is launched, stopped or changed.
    \b
    streamrun probe > probe.txt
    streamrun probe --json --request REQUEST_ID
    """
    from streamrun_async import DEFAULT_BASE_URL

    if request_id is not None:
        try:
            path_segment(request_id, "request_id")
        except StreamrunError as error:
            raise click.BadParameter(str(error), param_hint="'--request'") from None
    reports = call(rt, lambda client: run_probe(client, request_id))
    if rt.json_output:
        rt.print_json({"sdk_version": _version(), "calls": reports})
    else:
        click.echo(render_text(reports, rt.base_url, DEFAULT_BASE_URL))
