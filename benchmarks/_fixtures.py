"""Instance JSON shaped exactly as the emulator renders it, generated deterministically."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["configuration_id", "instance_json", "instances_body", "instances_json"]

CREATED_AT = "2025-01-01T00:00:00.000Z"


def configuration_id(index: int) -> str:
    """The id of configuration number ``index``."""
    return f"cfg-{index:016x}"


def instance_json(
    index: int, *, configurations: int = 1, state: str = "QUEUED", observed: bool = False
) -> dict[str, Any]:
    """One instance as ``GET /instances`` returns it (camelCase, ISO timestamp, overrides).

    ``observed``: also the fields a live list item may carry that the SDK does not model.
    """
    item = {
        "id": f"inst-{index:016x}",
        "configurationId": configuration_id(index % configurations),
        "name": f"stream-{index}",
        "state": state,
        "requestId": f"ireq-{index // 10:016x}",
        "outputs": "OFFLINE",
        "createdAt": CREATED_AT,
        "overrides": {"htmloverlay-1": {"url": f"https://overlays.example.com/scene/{index}"}},
    }
    if observed:
        item |= {
            "configurationName": f"Scoreboard {index % configurations}",
            "region": "eu-central",
            "serverType": "standard",
            "startedAt": CREATED_AT,
            "updatedAt": CREATED_AT,
            "preview": False,
            "autoStop": True,
        }
    return item


def instances_json(
    count: int, *, configurations: int = 1, state: str = "QUEUED", observed: bool = False
) -> list[dict[str, Any]]:
    """``count`` instances spread round-robin over ``configurations`` configurations."""
    return [
        instance_json(i, configurations=configurations, state=state, observed=observed)
        for i in range(count)
    ]


def instances_body(instances: list[dict[str, Any]]) -> bytes:
    """The enveloped JSON body ``{"instances": [...]}`` as the emulator sends it."""
    return json.dumps({"instances": instances}).encode()
