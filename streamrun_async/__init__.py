"""streamrun_async: an async-first SDK for the Streamrun live-streaming API.

::

    import streamrun_async as sr

    async with sr.StreamrunClient() as client:
        request = await client.configurations.launch(cfg_id)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._client import DEFAULT_BASE_URL, StreamrunClient
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
from ._secret import SecretStr
from ._retry import RetryEvent, RetryPolicy
from ._watch import ChangeKind, InstanceChange, InstanceWatch, PollPolicy, RequestWatch

if TYPE_CHECKING:
    from ._bulk import (
        LaunchedInstance,
        LaunchError,
        LaunchEvent,
        LaunchEventKind,
        LaunchReport,
        LaunchSpec,
        Plan,
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
        "LaunchSpec",
        "Plan",
    )
}

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
    "MissingAPIKeyError",
    "NoCapacityError",
    "NotFoundError",
    "Outputs",
    "Overrides",
    "PermissionDeniedError",
    "Plan",
    "PollPolicy",
    "RateLimitError",
    "RequestWatch",
    "ResponseDecodeError",
    "RetryEvent",
    "RetryPolicy",
    "SecretStr",
    "ServerError",
    "StreamrunClient",
    "StreamrunError",
    "WaitError",
    "WaitTimeoutError",
    "WaiterError",
]


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
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if name == "testing":
        return importlib.import_module(".testing", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
