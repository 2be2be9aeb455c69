"""What a command that launched leaves behind when it is interrupted or times out.

Launched instances keep running (and RUNNING ones are billed) after the command ends, so
it says which it launched, which still queue or run, and the exact command that stops
just those: never ``stop-all``, which would stop every instance of the account.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from streamrun_async import Instance, LaunchReport

__all__ = ["left_behind"]


def _stop_command(ids: Sequence[str]) -> str:
    """The command that stops exactly these instances."""
    return " ".join(_quote(part) for part in ["streamrun", "instances", "stop", *ids])


def _quote(word: str) -> str:
    """A word as a POSIX shell reads it back."""
    return (
        word
        if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", word)
        else "'" + word.replace("'", "'\\''") + "'"
    )


def left_behind(
    configuration_id: str, report: LaunchReport, listed: list[Instance] | None
) -> list[str]:
    """What this command launched, what of it still runs or queues, and how to stop just that.

    ``listed``: the configuration's instances as listed just now (None if that failed):
    they give the ids and states the report may not have learned yet.
    """
    mine = [item for item in report.launched.values() if not item.existing]
    lines: list[str] = []
    if mine:
        by_name: dict[str, Instance] = {}
        for inst in listed or []:
            # A live instance of the name beats an ended one that is still listed.
            if inst.name is not None and (
                inst.name not in by_name or by_name[inst.name].state.is_terminal
            ):
                by_name[inst.name] = inst
        described: list[str] = []
        alive: list[str] = []
        alive_ids: list[str] = []
        unlisted: list[str] = []
        for item in mine:
            seen = by_name.get(item.name)
            instance_id = seen.id if seen is not None else item.instance_id
            state = seen.state if seen is not None else item.state
            described.append(f"{item.name} ({instance_id or 'id not yet known'})")
            if seen is None and instance_id is None:
                unlisted.append(item.name)
            elif not state.is_terminal:
                alive.append(f"{item.name} {state}")
                if instance_id is not None:
                    alive_ids.append(instance_id)
        lines.append(
            f"this command launched {len(mine)} instance(s) of {configuration_id}: "
            + ", ".join(described)
        )
        if alive:
            lines.append(
                f"still QUEUED or RUNNING (RUNNING is billed per second): {', '.join(alive)}"
            )
            lines.append("stop just these: " + _stop_command(alive_ids))
        if unlisted:
            lines.append(
                f"not listed yet (lists can lag behind a launch): {', '.join(unlisted)}; "
                f"check `streamrun instances list --configuration {configuration_id}`, then "
                f"`streamrun instances stop --configuration {configuration_id} NAME...`"
            )
        if not alive and not unlisted:
            lines.append("none of them is queued or running now")
    if report.unknown:
        lines.append(
            f"{len(report.unknown)} launch(es) may or may not have happened "
            f"({', '.join(sorted(report.unknown))}): check "
            f"`streamrun instances list --configuration {configuration_id}`"
        )
    return lines or ["nothing was launched"]
