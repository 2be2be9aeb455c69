"""Guardrails on spend: leases that expire, a reaper that outlives the bot, budgets.

``StreamrunClient(guard=Guard(owner="my-bot", default_ttl=3600))`` writes a lease before
every launch and stops what outlives its lease; ``streamrun reap`` does the same from cron
when the bot is dead. See the README's "Guardrails" section.
"""

from __future__ import annotations

from ._budget import Budget, Meter, Spend, check_launch
from ._errors import (
    BudgetExceededError,
    LeaseNotFoundError,
    LeaseStoreCorruptError,
    LeaseStoreError,
    LeaseStorePathError,
    StopNotConfirmedError,
    UnknownOwnerError,
)
from ._events import (
    BudgetBreached,
    BudgetWarning,
    GuardEvent,
    LeaseEnded,
    LeaseReaped,
    LeaseUnmatched,
    LeaseWriteFailed,
    ReapFailed,
)
from ._guard import (
    Guard,
    GuardStats,
    Leases,
    check_known_owner,
    extend_lease,
    find_lease,
    release_lease,
)
from ._lease import Lease, check_owner, check_ttl, names_match
from ._reaper import Observation, Reaper, ReapFailure, ReapPlan, ReapReport, plan_reap
from ._stop import StopReport, stop_unfinished
from ._stores import LeaseStore, RedisLeaseStore, SQLiteLeaseStore, default_store_path

__all__ = [
    "Budget",
    "BudgetBreached",
    "BudgetExceededError",
    "BudgetWarning",
    "Guard",
    "GuardEvent",
    "GuardStats",
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
    "Meter",
    "Observation",
    "ReapFailed",
    "ReapFailure",
    "ReapPlan",
    "ReapReport",
    "Reaper",
    "RedisLeaseStore",
    "SQLiteLeaseStore",
    "Spend",
    "StopNotConfirmedError",
    "StopReport",
    "UnknownOwnerError",
    "check_known_owner",
    "check_launch",
    "check_owner",
    "check_ttl",
    "default_store_path",
    "extend_lease",
    "find_lease",
    "names_match",
    "plan_reap",
    "release_lease",
    "stop_unfinished",
]
