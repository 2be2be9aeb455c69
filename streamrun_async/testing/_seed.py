"""What the emulated account starts with: configurations and destinations."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "DEFAULT_ELEMENTS",
    "DEMO_CONFIGURATIONS",
    "DEMO_DESTINATIONS",
    "ConfigurationSeed",
    "DestinationSeed",
    "Platform",
    "describe_element",
    "element_settings",
]

Platform = Literal["twitch", "youtube", "kick", "rtmp"]

DEFAULT_ELEMENTS: tuple[str, ...] = ("inputstream-1", "htmloverlay-1", "switch-1", "outputstream-1")

_ELEMENT_ID = re.compile(r"([a-z]+)-([1-9][0-9]*)")
_TITLES = {
    "htmloverlay": "HTML overlay",
    "inputstream": "Input stream",
    "outputstream": "Output stream",
    "splitter": "Splitter",
    "switch": "Switch",
    "videoplayer": "Video player",
}


def describe_element(element_id: str) -> tuple[str, str]:
    """The (type, title) of an element id such as ``htmloverlay-1``."""
    match = _ELEMENT_ID.fullmatch(element_id)
    if match is None:
        raise ValueError(f"element id {element_id!r} is not of the form '<type>-<n>'")
    kind, number = match.groups()
    return kind, f"{_TITLES.get(kind, kind.capitalize())} {number}"


def element_settings(
    element_id: str, elements: Sequence[str], destination_ids: Sequence[str]
) -> dict[str, Any]:
    """The saved editor settings of an element, as a configuration's detail shows them."""
    kind, number = describe_element(element_id)[0], element_id.rsplit("-", 1)[1]
    if kind == "inputstream":
        return {"inputType": "rtmp"}
    if kind == "htmloverlay":
        return {"url": f"https://example.com/overlay-{number}", "visible": True}
    if kind == "videoplayer":
        return {"url": f"https://example.com/video-{number}.mp4", "loop": True}
    if kind == "switch":
        inputs = [e for e in elements if e.startswith("inputstream-")]
        return {"input": inputs[0] if inputs else None}
    if kind == "outputstream":
        return {"destinations": list(destination_ids[:1]), "outputs": "OFFLINE"}
    return {}


@dataclass(frozen=True, slots=True)
class ConfigurationSeed:
    """A configuration to seed the account with.

    ``ConfigurationSeed("Show", elements=("inputstream-1", "outputstream-1"))``; the id is
    drawn from the emulator's seeded RNG when not given.
    """

    name: str
    elements: Sequence[str] = DEFAULT_ELEMENTS
    id: str | None = None

    def __post_init__(self) -> None:
        for element_id in self.elements:
            describe_element(element_id)
        if len(set(self.elements)) != len(self.elements):
            raise ValueError(f"configuration {self.name!r} repeats an element id")


@dataclass(frozen=True, slots=True)
class DestinationSeed:
    """A destination to seed the account with; the id is drawn when not given."""

    name: str
    platform: Platform
    id: str | None = None


DEMO_CONFIGURATIONS: tuple[ConfigurationSeed, ...] = (
    ConfigurationSeed("Morning Show"),
    ConfigurationSeed(
        "Esports Finals", (*DEFAULT_ELEMENTS, "inputstream-2", "switch-2", "outputstream-2")
    ),
    ConfigurationSeed("Lo-fi Radio", (*DEFAULT_ELEMENTS, "videoplayer-1")),
    ConfigurationSeed("Product Launch", (*DEFAULT_ELEMENTS, "htmloverlay-2", "splitter-1")),
)

DEMO_DESTINATIONS: tuple[DestinationSeed, ...] = (
    DestinationSeed("Twitch main channel", "twitch"),
    DestinationSeed("YouTube channel", "youtube"),
    DestinationSeed("Kick channel", "kick"),
    DestinationSeed("Studio RTMP ingest", "rtmp"),
)
