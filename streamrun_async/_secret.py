"""``SecretStr``: a string that never shows itself in ``str``, ``repr`` or an f-string.

Stream keys are secrets (anyone holding one can push video into that input), so the SDK
hands them out wrapped: printing, logging or formatting one shows a mask, and only
``get_secret_value()`` gives the text.
"""

from __future__ import annotations

import hmac
from typing import Final

from ._exceptions import InvalidArgumentTypeError

__all__ = ["SecretStr"]

_MASK: Final = "**********"


class SecretStr:
    """A secret string: ``str()`` and ``repr()`` show a mask of fixed length.

    ``SecretStr("k3y").get_secret_value() == "k3y"``; two ``SecretStr`` are equal when
    their secrets are (compared in constant time); a plain ``str`` never equals one, so a
    secret cannot be compared by accident with text that was printed.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise InvalidArgumentTypeError(f"a secret must be a str, got {type(value).__name__}")
        self._value = value

    def get_secret_value(self) -> str:
        """The secret itself: handle with care (never log it)."""
        return self._value

    def __str__(self) -> str:
        return _MASK

    def __repr__(self) -> str:
        return f"SecretStr({_MASK!r})"

    def __format__(self, spec: str) -> str:
        return format(_MASK, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretStr):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((SecretStr, self._value))
