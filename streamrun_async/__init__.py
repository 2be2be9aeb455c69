"""streamrun_async: an async-first SDK for the Streamrun live-streaming API.

::

    import streamrun_async as sr

    async with sr.StreamrunClient() as client:
        request = await client.configurations.launch(cfg_id)
"""

from __future__ import annotations

import importlib
from types import FunctionType
from typing import TYPE_CHECKING, Any

from ._client import DEFAULT_BASE_URL, StreamrunClient
from ._events import (
    PollTicked,
    RequestFinished,
    RequestStarted,
    RetryScheduled,
    WaitFinished,
    WaitStarted,
)
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    EventLoopError,
    IncompleteListError,
    InsecureTransportError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    MissingAPIKeyError,
    NoCapacityError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    StreamrunError,
    WaiterError,
    WaitError,
    WaitTimeoutError,
)
from ._models import (
    Configuration,
    Destination,
    Element,
    ElementState,
    Instance,
    InstanceRequest,
    InstanceSettings,
    InstanceState,
    Outputs,
    Overrides,
)
from ._resources import AcceptedLaunch
from ._retry import RetryEvent, RetryPolicy
from ._secret import SecretStr
from .watch import ChangeKind, InstanceChange, InstanceWatch, PollPolicy, RequestWatch

if TYPE_CHECKING:
    from ._bulk import (
        LaunchedInstance,
        LaunchError,
        LaunchEvent,
        LaunchEventKind,
        LaunchItem,
        LaunchReport,
        LaunchSpec,
        LaunchStatus,
        LaunchTimeoutError,
        OnExisting,
        Plan,
        TransitionError,
    )
    from ._coordinator import Coordinator, CoordinatorError, FileCoordinator, RedisCoordinator
    from ._fleet import (
        Fleet,
        FleetAction,
        FleetActionKind,
        FleetConfiguration,
        FleetFileError,
        FleetInstance,
        FleetPlan,
        FleetReport,
    )
    from .guard import (
        Budget,
        BudgetBreached,
        BudgetExceededError,
        BudgetWarning,
        Guard,
        Lease,
        LeaseEnded,
        LeaseNotFoundError,
        LeaseReaped,
        Leases,
        LeaseStore,
        LeaseStoreCorruptError,
        LeaseStoreError,
        LeaseStorePathError,
        LeaseUnmatched,
        LeaseWriteFailed,
        ReapFailed,
        ReapReport,
        RedisLeaseStore,
        Spend,
        SQLiteLeaseStore,
        StopNotConfirmedError,
        StopReport,
        UnknownOwnerError,
        stop_unfinished,
    )

# Bulk launching is loaded on first use: most programs never need it at import time.
_LAZY = {
    name: "._bulk"
    for name in (
        "LaunchedInstance",
        "LaunchError",
        "LaunchEvent",
        "LaunchEventKind",
        "LaunchReport",
        "LaunchItem",
        "LaunchSpec",
        "LaunchStatus",
        "LaunchTimeoutError",
        "OnExisting",
        "Plan",
        "TransitionError",
    )
}
# Fleets in a file likewise.
_LAZY.update(
    dict.fromkeys(
        (
            "Fleet",
            "FleetAction",
            "FleetActionKind",
            "FleetConfiguration",
            "FleetFileError",
            "FleetInstance",
            "FleetPlan",
            "FleetReport",
        ),
        "._fleet",
    )
)
# Coordinators likewise (file locks and Redis are for programs that run several processes).
_LAZY.update(
    dict.fromkeys(
        ("Coordinator", "CoordinatorError", "FileCoordinator", "RedisCoordinator"),
        "._coordinator",
    )
)
# Guardrails (leases, reaper, budgets) likewise: sqlite3 and Redis load only when used.
_LAZY.update(
    dict.fromkeys(
        (
            "Budget",
            "BudgetBreached",
            "BudgetExceededError",
            "BudgetWarning",
            "Guard",
            "Lease",
            "LeaseEnded",
            "LeaseNotFoundError",
            "LeaseReaped",
            "LeaseStore",
            "LeaseStoreCorruptError",
            "LeaseStoreError",
            "LeaseStorePathError",
            "LeaseUnmatched",
            "LeaseWriteFailed",
            "Leases",
            "ReapFailed",
            "ReapReport",
            "RedisLeaseStore",
            "SQLiteLeaseStore",
            "Spend",
            "StopNotConfirmedError",
            "StopReport",
            "UnknownOwnerError",
            "stop_unfinished",
        ),
        ".guard",
    )
)

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "AcceptedLaunch",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ChangeKind",
    "ClientClosedError",
    "Configuration",
    "ConflictError",
    "Destination",
    "Element",
    "ElementState",
    "EventLoopError",
    "IncompleteListError",
    "InsecureTransportError",
    "Instance",
    "InstanceChange",
    "InstanceRequest",
    "InstanceSettings",
    "InstanceState",
    "InstanceWatch",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "LaunchError",
    "LaunchEvent",
    "LaunchEventKind",
    "LaunchReport",
    "LaunchSpec",
    "LaunchedInstance",
    "LaunchItem",
    "LaunchStatus",
    "LaunchTimeoutError",
    "OnExisting",
    "TransitionError",
    "Coordinator",
    "CoordinatorError",
    "FileCoordinator",
    "Fleet",
    "FleetAction",
    "FleetActionKind",
    "FleetConfiguration",
    "FleetFileError",
    "FleetInstance",
    "FleetPlan",
    "FleetReport",
    "RedisCoordinator",
    "MissingAPIKeyError",
    "NoCapacityError",
    "NotFoundError",
    "Outputs",
    "Overrides",
    "PermissionDeniedError",
    "Plan",
    "PollPolicy",
    "PollTicked",
    "RateLimitError",
    "RequestFinished",
    "RequestStarted",
    "RequestWatch",
    "ResponseDecodeError",
    "RetryEvent",
    "RetryScheduled",
    "RetryPolicy",
    "SecretStr",
    "ServerError",
    "StreamrunClient",
    "StreamrunError",
    "WaitError",
    "WaitFinished",
    "WaitStarted",
    "WaitTimeoutError",
    "WaiterError",
    "Budget",
    "BudgetBreached",
    "BudgetExceededError",
    "BudgetWarning",
    "Guard",
    "Lease",
    "LeaseEnded",
    "LeaseNotFoundError",
    "LeaseReaped",
    "LeaseStore",
    "LeaseStoreCorruptError",
    "LeaseStoreError",
    "LeaseStorePathError",
    "LeaseUnmatched",
    "LeaseWriteFailed",
    "Leases",
    "ReapFailed",
    "ReapReport",
    "RedisLeaseStore",
    "SQLiteLeaseStore",
    "Spend",
    "StopNotConfirmedError",
    "StopReport",
    "UnknownOwnerError",
    "stop_unfinished",
]


def _public(value: Any) -> Any:
    # Reprs, tracebacks and docs name the package, not the private module it lives in (as
    # httpx does). Only our own classes and functions: never an alias of a builtin type.
    if isinstance(value, (type, FunctionType)) and value.__module__.startswith(f"{__name__}."):
        value.__module__ = __name__
    return value


for _name in __all__:
    if _name in globals():
        _public(globals()[_name])
del _name


def __getattr__(name: str) -> Any:
    # The version is read from the installed metadata only when asked for: importlib.metadata
    # costs import time that most programs never need.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("streamrun-async")
        except PackageNotFoundError:
            return "0+unknown"
    if name in _LAZY:
        value = _public(getattr(importlib.import_module(_LAZY[name], __name__), name))
        globals()[name] = value
        return value
    if name == "testing":
        return importlib.import_module(".testing", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
