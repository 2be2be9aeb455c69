"""Resume tokens of instance watches: what a watch has delivered, as a short string.

A token is ``zlib``-compressed JSON, base64url without padding: the watched
configurations and ``{instance id: state}``. It costs about 15 bytes per instance for
random ids of the API's shape (``inst-`` + 16 hex digits): 150 KB for 10,000 instances.
Reading it is refused with ``InvalidArgumentError`` (never another error) when it does
not parse, when it inflates beyond 1 MiB, or when its shape is wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Mapping

from .._exceptions import InvalidArgumentError
from .._models import InstanceState

__all__ = ["MAX_TOKEN_BYTES", "decode_token", "encode_token"]

MAX_TOKEN_BYTES = 1 << 20
"""The most a token may inflate to (1 MiB)."""
_VERSION = 1


def encode_token(configs: frozenset[str] | None, states: Mapping[str, InstanceState]) -> str:
    """The token of a watch over ``configs`` (None: the account) that delivered ``states``."""
    payload = {
        "v": _VERSION,
        "c": None if configs is None else sorted(configs),
        "s": {key: str(state) for key, state in states.items()},
    }
    packed = zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 9)
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def _refuse(reason: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"not a watch resume token: {reason}")


def decode_token(token: object) -> tuple[frozenset[str] | None, dict[str, InstanceState]]:
    """``(configurations, states)`` of a token; ``InvalidArgumentError`` if it is not one."""
    if not isinstance(token, str):
        raise _refuse(f"expected a str, got {type(token).__name__}")
    if len(token) > 2 * MAX_TOKEN_BYTES:
        raise _refuse("too long")
    try:
        packed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        inflater = zlib.decompressobj()
        text = inflater.decompress(packed, MAX_TOKEN_BYTES + 1)
        if len(text) > MAX_TOKEN_BYTES or inflater.unconsumed_tail:
            raise _refuse(f"it inflates beyond {MAX_TOKEN_BYTES} bytes")
        if not inflater.eof:
            raise _refuse("it is cut short")
        payload = json.loads(text)
    except InvalidArgumentError:
        raise
    except (ValueError, binascii.Error, zlib.error, RecursionError) as exc:
        raise _refuse(type(exc).__name__) from None
    if not isinstance(payload, dict) or payload.get("v") != _VERSION:
        raise _refuse("unknown version")
    configs, states = payload.get("c"), payload.get("s")
    if configs is not None and (
        not isinstance(configs, list) or not all(isinstance(c, str) and c for c in configs)
    ):
        raise _refuse("bad configurations")
    if not isinstance(states, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in states.items()
    ):
        raise _refuse("bad states")
    return (
        None if configs is None else frozenset(configs),
        {key: InstanceState(value) for key, value in states.items()},
    )
