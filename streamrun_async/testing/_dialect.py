"""`Dialect`: how the emulated server spells its answers, one knob per unknown of the API.

The real API publishes no schema and community code saw only part of it, so every place
where a plausible server could answer differently is a knob here, and named presets
bundle knobs into whole servers. ``Emulator(dialect=Dialect.text_answers())``; the default
is `Dialect.observed`, the shapes community code saw from the live API. A dialect is served
on every route: the same envelope rule, timestamp format, state spelling and error body.

Knobs change how answers are *spelled* and *when* changes are *seen*. The account's truth
(``emu.state``) has names as launched and states upper case in every dialect; what it
cannot share are the states the dialect names (``booting_state``, ``failed_state``,
lingering STOPPING/STOPPED) and request timing (``request_state``).

Presets are data (`_Preset`: a docstring and the knobs it changes), so adding one is one
entry in the class body.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

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


def _one_of(literal: Any, *more: object) -> Any:
    """A validator accepting the values of a ``Literal`` type (and ``more``)."""
    return attrs.validators.in_((*get_args(literal), *more))


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} cannot be negative, not {value}")


_PRESET_KNOBS: dict[str, dict[str, Any]] = {}
"""Each preset's knobs by name, in the order the class lists them (`_Preset` fills it)."""


class _Preset:
    """A preset as data: its docstring and the knobs it changes. As an attribute of
    `Dialect` it is a function of no arguments, ``Dialect.classic()``, returning the
    preset (attrs checks the knobs when the presets are first built)."""

    def __init__(self, doc: str, **knobs: Any) -> None:
        self.__doc__ = doc
        self._knobs = knobs
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name
        _PRESET_KNOBS[name] = self._knobs

    def __get__(self, instance: object, owner: type | None = None) -> Callable[[], Dialect]:
        name = self._name

        def preset() -> Dialect:
            return _presets()[name]

        preset.__name__ = preset.__qualname__ = name
        preset.__doc__ = self.__doc__
        return preset


@attrs.frozen(kw_only=True)
class Dialect:
    """The knobs of one server dialect; each preset is called by name, `Dialect.presets()`.

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
    empty_list: EmptyList = attrs.field(default="envelope", validator=_one_of(EmptyList))
    list_summaries: bool = False
    element_settings: bool = True
    elements_form: ElementsForm = attrs.field(default="list", validator=_one_of(ElementsForm))
    destination_platform: bool = True
    detail_state: DetailState = attrs.field(default="object", validator=_one_of(DetailState))
    status_field: StatusField = attrs.field(default="status", validator=_one_of(StatusField))
    state_case: StateCase = attrs.field(default="upper", validator=_one_of(StateCase))
    booting_state: BootingState = attrs.field(default="QUEUED", validator=_one_of(BootingState))
    failed_state: FailedState = attrs.field(default="FAILED", validator=_one_of(FailedState))
    instance_names: InstanceNames = attrs.field(default="exact", validator=_one_of(InstanceNames))
    name_max_length: int = 16
    instance_request_id: bool = True
    instance_configuration_id: bool = True
    timestamps: Timestamps = attrs.field(default="iso", validator=_one_of(Timestamps))
    request_state: RequestStateMode = attrs.field(
        default="follows", validator=_one_of(RequestStateMode)
    )
    request_lag: float = attrs.field(default=5.0, validator=_non_negative)
    list_lag: float = attrs.field(default=0.0, validator=_non_negative)
    detail_lag: bool = False
    stopping_time: float = attrs.field(default=0.0, validator=_non_negative)
    stopped_linger: float = attrs.field(default=0.0, validator=_non_negative)
    stop_answer: StopAnswer = attrs.field(default="no_content", validator=_one_of(StopAnswer))
    restart_answer: StopAnswer = attrs.field(default="json", validator=_one_of(StopAnswer))
    launch_answer: LaunchAnswer = attrs.field(default="created", validator=_one_of(LaunchAnswer))
    page_size: int | None = None
    pagination: Pagination | None = attrs.field(default=None, validator=_one_of(Pagination, None))
    error_body: ErrorBody = attrs.field(default="json", validator=_one_of(ErrorBody))
    no_capacity_status: int = attrs.field(
        default=400, validator=attrs.validators.in_((400, 402, 403, 409))
    )
    no_capacity_wording: NoCapacityWording = attrs.field(
        default="slots", validator=_one_of(NoCapacityWording)
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

    # -- presets: Dialect.<name>() builds one; presets() lists them in this order --------

    observed = _Preset(
        "What community code saw from the live API (the default): lists wrapped, detail "
        "objects bare, the detail ``state`` an object with stream keys (status in "
        "``status``), elements with ``settings``, destinations with ``platform``."
    )
    classic = _Preset(
        "The emulator's shapes before dialects: bare bodies, ``state`` a string "
        "everywhere, elements without settings.",
        envelopes=False,
        detail_state="string",
        element_settings=False,
    )
    wrapped = _Preset(
        'The classic shapes with every body in an envelope, objects too (``{"instance": {...}}``).',
        object_envelopes=True,
        detail_state="string",
        element_settings=False,
    )
    lowercase_epoch = _Preset(
        '``"running"``, epoch seconds, the detail status in ``state.status``.',
        state_case="lower",
        timestamps="epoch_s",
        status_field="state.status",
    )
    epoch_ms_keyed = _Preset(
        "Epoch milliseconds, elements keyed by id, configuration lists of summaries, "
        "the detail status in ``state.state``.",
        timestamps="epoch_ms",
        elements_form="object",
        list_summaries=True,
        status_field="state.state",
    )
    rfc1123_bare = _Preset(
        "Bare arrays, RFC 1123 dates, STARTING while booting, no destination platform.",
        envelopes=False,
        timestamps="rfc1123",
        booting_state="STARTING",
        destination_platform=False,
    )
    paginated_link = _Preset(
        'Pages of two, bare arrays, ``Link: <...>; rel="next"`` (absolute URLs).',
        envelopes=False,
        page_size=2,
        pagination="link",
    )
    paginated_field = _Preset(
        "Pages of two, a relative ``next`` URL beside the items.",
        page_size=2,
        pagination="field",
    )
    paginated_cursor = _Preset(
        "Pages of three, an opaque ``nextCursor`` beside the items (``?cursor=``).",
        page_size=3,
        pagination="cursor",
    )
    sparse_instances = _Preset(
        "Instances without ``requestId``, ``configurationId`` or ``name``; a launch "
        'refused with 403 "Maximum number of instances reached".',
        instance_request_id=False,
        instance_configuration_id=False,
        instance_names="absent",
        no_capacity_status=403,
        no_capacity_wording="maximum",
    )
    lowercase_names = _Preset(
        "Names echoed lowercased.",
        instance_names="lower",
    )
    truncated_names = _Preset(
        "Names echoed cut to 8 characters.",
        instance_names="truncate",
        name_max_length=8,
    )
    lagging_lists = _Preset(
        "A launch shows in lists, its detail and its request only 3 s later.",
        list_lag=3.0,
        detail_lag=True,
    )
    request_leads = _Preset(
        "The request RUNNING once servers are allocated, instances still STARTING.",
        request_state="leads",
        booting_state="STARTING",
    )
    request_lags = _Preset(
        "The request QUEUED for 5 s after its instances run.",
        request_state="lags",
    )
    text_answers = _Preset(
        "Errors as text, stops and restarts ``200 text/plain OK``, launches ``303``, a "
        'launch refused with 409 "No free instance slot".',
        error_body="text",
        stop_answer="text_ok",
        restart_answer="text_ok",
        launch_answer="see_other",
        no_capacity_status=409,
        no_capacity_wording="free_slot",
    )
    json_answers = _Preset(
        "Stops answered with the stopping instances, launches 202 with ``Location``, a "
        'launch refused with 402 "No free instance slot".',
        stop_answer="json",
        launch_answer="accepted",
        no_capacity_status=402,
        no_capacity_wording="free_slot",
    )
    launch_body_only = _Preset(
        "Launches answered 201 with the request and no ``Location``; restarts 204.",
        launch_answer="created_no_location",
        restart_answer="no_content",
    )
    launch_accepted_body = _Preset(
        "Launches answered 202 with the request and no ``Location``.",
        launch_answer="accepted_no_location",
    )
    launch_instance_body = _Preset(
        "Launches answered with the created instance object(s), no ``Location``.",
        launch_answer="instance_body",
    )
    launch_unnamed = _Preset(
        "Launches answered with the created instances, which carry no ``requestId``: "
        "the answer names no instance request at all.",
        launch_answer="instance_body",
        instance_request_id=False,
    )
    launch_absolute = _Preset(
        "Launches answered with an absolute ``Location`` URL.",
        launch_answer="absolute_location",
    )
    empty_null = _Preset(
        "An empty list is ``null``.",
        empty_list="null",
    )
    empty_object = _Preset(
        "An empty list is ``{}``.",
        empty_list="object",
    )
    empty_null_envelope = _Preset(
        'An empty list is ``{"instances": null}``.',
        empty_list="null_envelope",
    )
    empty_no_content = _Preset(
        "An empty list is a 204 without a body.",
        empty_list="no_content",
    )
    stops_linger = _Preset(
        "Stopped instances stay listed, 2 s STOPPING then 3 s STOPPED; failures as ERROR.",
        stopping_time=2.0,
        stopped_linger=3.0,
        failed_state="ERROR",
    )

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


@functools.cache
def _presets() -> Mapping[str, Dialect]:
    return {name: Dialect(name=name, **knobs) for name, knobs in _PRESET_KNOBS.items()}


@functools.cache
def _defaults() -> Dialect:
    return Dialect()
