"""`Dialect`: how the emulated server spells its answers, one knob per unknown of the API.

The real API publishes no schema and community code saw only part of it, so every place
where a plausible server could answer differently is a knob here, and named presets
bundle knobs into whole servers. ``Emulator(dialect=Dialect.text_answers())``; the default
is `Dialect.observed`, the shapes community code saw from the live API. A dialect is served
on every route: the same envelope rule, timestamp format, state spelling and error body.

Knobs change how answers are *spelled* and *when* changes are *seen*; the account's truth
(``emu.state``) is the same in every dialect, with names as launched and states upper case.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = ["Dialect"]

DetailState = Literal["string", "object"]
StatusField = Literal["status", "state.status", "state.state"]
StateCase = Literal["upper", "lower"]
BootingState = Literal["QUEUED", "STARTING"]
FailedState = Literal["FAILED", "ERROR"]
Timestamps = Literal["iso", "epoch_s", "epoch_ms", "rfc1123"]
EmptyList = Literal["envelope", "null", "object", "null_envelope", "no_content"]
StopAnswer = Literal["no_content", "json", "text_ok"]
LaunchAnswer = Literal[
    "created",
    "accepted",
    "see_other",
    "created_no_location",
    "accepted_no_location",
    "instance_body",
    "absolute_location",
]
Pagination = Literal["link", "field", "cursor"]
InstanceNames = Literal["exact", "absent", "lower", "truncate"]
RequestStateMode = Literal["follows", "leads", "lags"]
ErrorBody = Literal["json", "text"]
NoCapacityWording = Literal["slots", "free_slot", "maximum"]
ElementsForm = Literal["list", "object"]


def _one_of(*values: object) -> Any:
    return attrs.validators.in_(values)


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} cannot be negative, not {value}")


@attrs.frozen(kw_only=True)
class Dialect:
    """The knobs of one server dialect; presets are classmethods, `Dialect.presets()`.

    ::

        Dialect.observed()                                  # the default
        attrs.evolve(Dialect.classic(), page_size=2, pagination="link")

    Bodies and envelopes:

    - ``envelopes``: lists wrapped as ``{"instances": [...]}`` (else bare arrays).
    - ``object_envelopes``: single objects wrapped as ``{"instance": {...}}``.
    - ``empty_list``: an empty list as any other (``"envelope"``), or as ``null``, ``{}``,
      ``{"instances": null}`` (``"null_envelope"``) or a ``204`` (``"no_content"``).
    - ``list_summaries``: configuration list items without ``elements`` (the detail has them).
    - ``element_settings``: configuration elements carry their saved ``settings``.
    - ``elements_form``: a configuration's ``elements`` as a list or an object keyed by id.
    - ``destination_platform``: destinations carry ``platform``.

    Instances:

    - ``detail_state``: ``GET /instances/{id}`` answers ``state`` as a string, or as an
      object whose ``elements[]`` hold each element's runtime ``state`` (an input's
      ``streamkey`` and ``fps``), with the instance's ``streamkey`` at the top level.
    - ``status_field``: where the lifecycle state lives when ``state`` is an object:
      ``status`` at the top level, or ``state.status`` / ``state.state``.
    - ``state_case``: states spelt ``RUNNING`` or ``running`` (requests too).
    - ``booting_state``: what an instance that has a server but has not booted shows.
    - ``failed_state``: how an instance that failed to boot is spelt (see ``fail_rate``).
    - ``instance_names``: names echoed as launched, left out, lowercased, or cut to
      ``name_max_length`` characters.
    - ``instance_request_id`` / ``instance_configuration_id``: instances carry them.
    - ``timestamps``: ``createdAt`` as ISO 8601 (``Z``), epoch seconds, epoch
      milliseconds or an RFC 1123 date.

    Timing (seconds on the emulator's clock):

    - ``request_state``: a request RUNNING once all its live instances run (``"follows"``),
      once they all have servers while they still boot (``"leads"``), or ``request_lag``
      seconds after they all run (``"lags"``).
    - ``list_lag``: an accepted launch's instances appear in lists this long after it;
      with ``detail_lag`` their detail and the request ``GET`` answer 404 as long (reads
      lag; stops and other writes act at once).
    - ``stopping_time`` then ``stopped_linger``: a stopped instance stays listed, as
      ``STOPPING`` and then ``STOPPED``, for these many seconds (0: gone at once).

    Answers:

    - ``stop_answer``: the three ``DELETE`` routes answer ``204``, ``200`` with JSON (the
      stopped instances, as ``STOPPING``), or ``200 text/plain OK``; ``restart_answer``
      likewise for a restart (JSON: the instance).
    - ``launch_answer``: ``created`` (201, relative ``Location``, the request),
      ``accepted`` (the same with 202), ``see_other`` (303 and ``Location``, no body),
      ``created_no_location`` / ``accepted_no_location`` (the request, no ``Location``),
      ``instance_body`` (201, no ``Location``: the created instance object, or
      ``{"instances": [...]}`` when several), ``absolute_location`` (201, absolute URL).
    - ``page_size`` and ``pagination``: lists cut into pages followed by a ``Link:
      <absolute URL>; rel="next"`` header (``"link"``), a relative URL in ``next`` beside
      the items (``"field"``), or an opaque ``nextCursor`` taken back as ``?cursor=``.
    - ``error_body``: errors as ``{"error": {"code", "message"}}`` or as the message in
      ``text/plain``; ``no_capacity_status`` and ``no_capacity_wording`` (``slots``: "0
      instance slots available", ``free_slot``: "No free instance slot", ``maximum``:
      "Maximum number of instances reached") for a launch refused for want of slots.
    """

    name: str = attrs.field(default="custom", eq=False)
    """The preset's name (``"custom"`` for one made by hand); not compared."""
    envelopes: bool = True
    object_envelopes: bool = False
    empty_list: EmptyList = attrs.field(
        default="envelope",
        validator=_one_of("envelope", "null", "object", "null_envelope", "no_content"),
    )
    list_summaries: bool = False
    element_settings: bool = True
    elements_form: ElementsForm = attrs.field(default="list", validator=_one_of("list", "object"))
    destination_platform: bool = True
    detail_state: DetailState = attrs.field(default="object", validator=_one_of("string", "object"))
    status_field: StatusField = attrs.field(
        default="status", validator=_one_of("status", "state.status", "state.state")
    )
    state_case: StateCase = attrs.field(default="upper", validator=_one_of("upper", "lower"))
    booting_state: BootingState = attrs.field(
        default="QUEUED", validator=_one_of("QUEUED", "STARTING")
    )
    failed_state: FailedState = attrs.field(default="FAILED", validator=_one_of("FAILED", "ERROR"))
    instance_names: InstanceNames = attrs.field(
        default="exact", validator=_one_of("exact", "absent", "lower", "truncate")
    )
    name_max_length: int = 16
    instance_request_id: bool = True
    instance_configuration_id: bool = True
    timestamps: Timestamps = attrs.field(
        default="iso", validator=_one_of("iso", "epoch_s", "epoch_ms", "rfc1123")
    )
    request_state: RequestStateMode = attrs.field(
        default="follows", validator=_one_of("follows", "leads", "lags")
    )
    request_lag: float = attrs.field(default=5.0, validator=_non_negative)
    list_lag: float = attrs.field(default=0.0, validator=_non_negative)
    detail_lag: bool = False
    stopping_time: float = attrs.field(default=0.0, validator=_non_negative)
    stopped_linger: float = attrs.field(default=0.0, validator=_non_negative)
    stop_answer: StopAnswer = attrs.field(
        default="no_content", validator=_one_of("no_content", "json", "text_ok")
    )
    restart_answer: StopAnswer = attrs.field(
        default="json", validator=_one_of("no_content", "json", "text_ok")
    )
    launch_answer: LaunchAnswer = attrs.field(
        default="created",
        validator=_one_of(
            "created",
            "accepted",
            "see_other",
            "created_no_location",
            "accepted_no_location",
            "instance_body",
            "absolute_location",
        ),
    )
    page_size: int | None = None
    pagination: Pagination | None = attrs.field(
        default=None, validator=_one_of(None, "link", "field", "cursor")
    )
    error_body: ErrorBody = attrs.field(default="json", validator=_one_of("json", "text"))
    no_capacity_status: int = attrs.field(default=400, validator=_one_of(400, 402, 403, 409))
    no_capacity_wording: NoCapacityWording = attrs.field(
        default="slots", validator=_one_of("slots", "free_slot", "maximum")
    )

    def __attrs_post_init__(self) -> None:
        if (self.page_size is None) != (self.pagination is None):
            raise ValueError("page_size and pagination go together: set both or neither")
        if self.page_size is not None and self.page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {self.page_size}")
        if self.pagination in ("field", "cursor") and not self.envelopes:
            raise ValueError(
                f"pagination={self.pagination!r} needs envelopes (a field beside items)"
            )
        if self.empty_list == "null_envelope" and not self.envelopes:
            raise ValueError('empty_list="null_envelope" needs envelopes')
        if self.name_max_length < 1:
            raise ValueError(f"name_max_length must be at least 1, not {self.name_max_length}")

    def __repr__(self) -> str:
        default = _defaults()
        changed = ", ".join(
            f"{a.name}={getattr(self, a.name)!r}"
            for a in attrs.fields(Dialect)
            if a.name != "name" and getattr(self, a.name) != getattr(default, a.name)
        )
        return f"<Dialect {self.name}{': ' + changed if changed else ''}>"

    # -- presets ------------------------------------------------------------------

    @classmethod
    def presets(cls) -> dict[str, Dialect]:
        """Every named preset, name -> dialect, ``observed`` first."""
        return dict(_presets())

    @classmethod
    def named(cls, name: str) -> Dialect:
        """The preset called ``name``; ValueError listing the names when there is none."""
        try:
            return _presets()[name]
        except KeyError:
            raise ValueError(
                f"no dialect preset {name!r}; presets are: {', '.join(_presets())}"
            ) from None

    @classmethod
    def observed(cls) -> Dialect:
        """What community code saw from the live API (the default): lists wrapped, detail
        objects bare, the detail ``state`` an object with stream keys (status in
        ``status``), elements with ``settings``, destinations with ``platform``."""
        return cls(name="observed")

    @classmethod
    def classic(cls) -> Dialect:
        """The emulator's shapes before dialects: bare bodies, ``state`` a string
        everywhere, elements without settings."""
        return cls(
            name="classic",
            envelopes=False,
            detail_state="string",
            element_settings=False,
        )

    @classmethod
    def wrapped(cls) -> Dialect:
        """The classic shapes with every body in an envelope, objects too
        (``{"instance": {...}}``)."""
        return cls(
            name="wrapped", object_envelopes=True, detail_state="string", element_settings=False
        )

    @classmethod
    def lowercase_epoch(cls) -> Dialect:
        """``"running"``, epoch seconds, the detail status in ``state.status``."""
        return cls(
            name="lowercase_epoch",
            state_case="lower",
            timestamps="epoch_s",
            status_field="state.status",
        )

    @classmethod
    def epoch_ms_keyed(cls) -> Dialect:
        """Epoch milliseconds, elements keyed by id, configuration lists of summaries,
        the detail status in ``state.state``."""
        return cls(
            name="epoch_ms_keyed",
            timestamps="epoch_ms",
            elements_form="object",
            list_summaries=True,
            status_field="state.state",
        )

    @classmethod
    def rfc1123_bare(cls) -> Dialect:
        """Bare arrays, RFC 1123 dates, STARTING while booting, no destination platform."""
        return cls(
            name="rfc1123_bare",
            envelopes=False,
            timestamps="rfc1123",
            booting_state="STARTING",
            destination_platform=False,
        )

    @classmethod
    def paginated_link(cls) -> Dialect:
        """Pages of two, bare arrays, ``Link: <...>; rel="next"`` (absolute URLs)."""
        return cls(name="paginated_link", envelopes=False, page_size=2, pagination="link")

    @classmethod
    def paginated_field(cls) -> Dialect:
        """Pages of two, a relative ``next`` URL beside the items."""
        return cls(name="paginated_field", page_size=2, pagination="field")

    @classmethod
    def paginated_cursor(cls) -> Dialect:
        """Pages of three, an opaque ``nextCursor`` beside the items (``?cursor=``)."""
        return cls(name="paginated_cursor", page_size=3, pagination="cursor")

    @classmethod
    def sparse_instances(cls) -> Dialect:
        """Instances without ``requestId``, ``configurationId`` or ``name``; a launch
        refused with 403 "Maximum number of instances reached"."""
        return cls(
            name="sparse_instances",
            instance_request_id=False,
            instance_configuration_id=False,
            instance_names="absent",
            no_capacity_status=403,
            no_capacity_wording="maximum",
        )

    @classmethod
    def lowercase_names(cls) -> Dialect:
        """Names echoed lowercased."""
        return cls(name="lowercase_names", instance_names="lower")

    @classmethod
    def truncated_names(cls) -> Dialect:
        """Names echoed cut to 8 characters."""
        return cls(name="truncated_names", instance_names="truncate", name_max_length=8)

    @classmethod
    def lagging_lists(cls) -> Dialect:
        """A launch shows in lists, its detail and its request only 3 s later."""
        return cls(name="lagging_lists", list_lag=3.0, detail_lag=True)

    @classmethod
    def request_leads(cls) -> Dialect:
        """The request RUNNING once servers are allocated, instances still STARTING."""
        return cls(name="request_leads", request_state="leads", booting_state="STARTING")

    @classmethod
    def request_lags(cls) -> Dialect:
        """The request QUEUED for 5 s after its instances run."""
        return cls(name="request_lags", request_state="lags", request_lag=5.0)

    @classmethod
    def text_answers(cls) -> Dialect:
        """Errors as text, stops and restarts ``200 text/plain OK``, launches ``303``,
        a launch refused with 409 "No free instance slot"."""
        return cls(
            name="text_answers",
            error_body="text",
            stop_answer="text_ok",
            restart_answer="text_ok",
            launch_answer="see_other",
            no_capacity_status=409,
            no_capacity_wording="free_slot",
        )

    @classmethod
    def json_answers(cls) -> Dialect:
        """Stops answered with the stopping instances, launches 202 with ``Location``,
        a launch refused with 402 "No free instance slot"."""
        return cls(
            name="json_answers",
            stop_answer="json",
            launch_answer="accepted",
            no_capacity_status=402,
            no_capacity_wording="free_slot",
        )

    @classmethod
    def launch_body_only(cls) -> Dialect:
        """Launches answered 201 with the request and no ``Location``; restarts 204."""
        return cls(
            name="launch_body_only",
            launch_answer="created_no_location",
            restart_answer="no_content",
        )

    @classmethod
    def launch_accepted_body(cls) -> Dialect:
        """Launches answered 202 with the request and no ``Location``."""
        return cls(name="launch_accepted_body", launch_answer="accepted_no_location")

    @classmethod
    def launch_instance_body(cls) -> Dialect:
        """Launches answered with the created instance object(s), no ``Location``."""
        return cls(name="launch_instance_body", launch_answer="instance_body")

    @classmethod
    def launch_unnamed(cls) -> Dialect:
        """Launches answered with the created instances, which carry no ``requestId``:
        the answer names no instance request at all."""
        return cls(name="launch_unnamed", launch_answer="instance_body", instance_request_id=False)

    @classmethod
    def launch_absolute(cls) -> Dialect:
        """Launches answered with an absolute ``Location`` URL."""
        return cls(name="launch_absolute", launch_answer="absolute_location")

    @classmethod
    def empty_null(cls) -> Dialect:
        """An empty list is ``null``."""
        return cls(name="empty_null", empty_list="null")

    @classmethod
    def empty_object(cls) -> Dialect:
        """An empty list is ``{}``."""
        return cls(name="empty_object", empty_list="object")

    @classmethod
    def empty_null_envelope(cls) -> Dialect:
        """An empty list is ``{"instances": null}``."""
        return cls(name="empty_null_envelope", empty_list="null_envelope")

    @classmethod
    def empty_no_content(cls) -> Dialect:
        """An empty list is a 204 without a body."""
        return cls(name="empty_no_content", empty_list="no_content")

    @classmethod
    def stops_linger(cls) -> Dialect:
        """Stopped instances stay listed, 2 s STOPPING then 3 s STOPPED; failures as ERROR."""
        return cls(name="stops_linger", stopping_time=2.0, stopped_linger=3.0, failed_state="ERROR")

    # -- spelling helpers for the server ----------------------------------------------

    def spell_state(self, state: str) -> str:
        """A state as this dialect writes it."""
        return state.lower() if self.state_case == "lower" else state

    def spell_name(self, name: str | None) -> str | None:
        """An instance name as this dialect echoes it (None: leave the key out)."""
        if name is None or self.instance_names == "exact":
            return name
        if self.instance_names == "lower":
            return name.lower()
        if self.instance_names == "truncate":
            return name[: self.name_max_length]
        return None


_PRESET_METHODS = (
    "observed",
    "classic",
    "wrapped",
    "lowercase_epoch",
    "epoch_ms_keyed",
    "rfc1123_bare",
    "paginated_link",
    "paginated_field",
    "paginated_cursor",
    "sparse_instances",
    "lowercase_names",
    "truncated_names",
    "lagging_lists",
    "request_leads",
    "request_lags",
    "text_answers",
    "json_answers",
    "launch_body_only",
    "launch_accepted_body",
    "launch_instance_body",
    "launch_unnamed",
    "launch_absolute",
    "empty_null",
    "empty_object",
    "empty_null_envelope",
    "empty_no_content",
    "stops_linger",
)


@functools.cache
def _presets() -> Mapping[str, Dialect]:
    return {name: getattr(Dialect, name)() for name in _PRESET_METHODS}


@functools.cache
def _defaults() -> Dialect:
    return Dialect()
