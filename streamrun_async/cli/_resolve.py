"""Instances named by id or by name on the command line.

A reference is looked up in one list call (the account's instances, or one
configuration's with ``--configuration``): an instance whose id is the reference wins;
otherwise the instances carrying it as their name. Several live instances with that name
are an error listing the candidates, so a command never acts on a guess. A reference
that matches nothing listed is used as an id as it is: lists may lag behind a launch,
and ``GET /instances/{id}`` still knows the instance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from streamrun_async import Instance, StreamrunClient

from ._runtime import CommandError

__all__ = ["AmbiguousName", "listed_instances", "match", "resolve"]


class AmbiguousName(CommandError):
    """A name that several instances carry: exit 1 with the candidates on one line."""

    def __init__(self, ref: str, candidates: Sequence[Instance]) -> None:
        listed = ", ".join(
            f"{inst.id} ({inst.configuration_id or '-'}, {inst.state})" for inst in candidates
        )
        super().__init__(
            f"{ref!r} names {len(candidates)} instances: {listed}; "
            "give an id, or --configuration to narrow the search"
        )


async def listed_instances(client: StreamrunClient, configuration_id: str | None) -> list[Instance]:
    """The instances names are resolved among."""
    if configuration_id is None:
        return await client.instances.list()
    return await client.configurations.list_instances(configuration_id)


def match(ref: str, listed: Iterable[Instance]) -> Instance | None:
    """The instance ``ref`` names among ``listed``; None when none does.

    An id beats a name. Among several with the name, stopped ones are ignored; if more
    than one live instance is left, :class:`AmbiguousName`.
    """
    named: list[Instance] = []
    for inst in listed:
        if inst.id == ref:
            return inst
        if inst.name == ref:
            named.append(inst)
    if len(named) > 1:
        live = [inst for inst in named if not inst.state.is_terminal]
        if len(live) == 1:
            return live[0]
        raise AmbiguousName(ref, live or named)
    return named[0] if named else None


async def resolve(
    client: StreamrunClient, refs: Sequence[str], configuration_id: str | None
) -> dict[str, Instance | None]:
    """Each reference's instance from one list call (None: not listed, try it as an id)."""
    listed = await listed_instances(client, configuration_id)
    return {ref: match(ref, listed) for ref in refs}
