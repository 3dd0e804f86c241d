"""The fleet: the replicas that share one store, as a health report shows them.

Every replica of a model version posts a heartbeat to a shared store (see ``store/contract.py``,
"Replicas"), and every replica judges the same rows, so any two answer alike. This module turns the
heartbeats into what a report says about the fleet, without knowing which replica asks:

* :func:`replica_statuses`: each replica, live or stale, with how its libraries differ from the fleet's;
* :func:`fleet_store_check`: the store check, for the whole fleet: the rows every replica wrote, a
  replica that stopped without closing (stale: what it held may be lost), one that falls behind or
  cannot write;
* :func:`fleet_environment_check`: the environment check, naming a live replica whose libraries differ
  from the others' (a rolling deploy half done).

The fleet's libraries are those of the most replicas; on a tie, those of the replica started first (a
rolling deploy replaces the oldest replicas last). The choice depends only on the heartbeats, so every
replica names the same one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .environment import Fingerprint, diff_environment
from .health import CheckResult, Status, worst
from .store.contract import STALE_AFTER
from .store.records import Replica

__all__ = ["ReplicaStatus", "fleet_environment_check", "fleet_store_check", "replica_statuses"]


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """One replica in a report: its last heartbeat, whether it is live, and its libraries' differences
    from the fleet's (``"numpy 2.1.3 -> 1.26.4"``; none when it runs the fleet's)."""

    name: str
    host: str
    pid: int
    library: str
    live: bool
    started_at: str
    last_seen: str
    pending: int
    written: int
    dropped: int
    last_error: str | None
    warnings: int
    libraries: tuple[str, ...] = ()


def replica_statuses(replicas: Sequence[Replica]) -> tuple[ReplicaStatus, ...]:
    """The replicas as a report lists them, oldest started first."""
    differences = _differences([r for r in replicas if _live(r)])
    return tuple(
        ReplicaStatus(
            name=r.name,
            host=r.host,
            pid=r.pid,
            library=r.library,
            live=_live(r),
            started_at=r.started_at,
            last_seen=r.last_seen,
            pending=r.pending,
            written=r.written,
            dropped=r.dropped,
            last_error=r.last_error,
            warnings=r.warnings,
            libraries=differences.get(r.name, ()),
        )
        for r in replicas
    )


def fleet_store_check(own: CheckResult, replicas: Sequence[Replica], me: str | None) -> CheckResult:
    """The store check of a replica (``own``, its own writer's state) widened to the fleet: the other
    replicas' problems are added, and a sound fleet is summed up over every live replica."""
    live = [r for r in replicas if _live(r)]
    problems: list[tuple[Status, str]] = []
    for r in replicas:
        if not _live(r):
            problems.append(
                (
                    Status.WARN,
                    f"replica {r.name} was last seen at {r.last_seen} (stopped without closing, or cut off from the"
                    f" database): {r.pending} rows were waiting in its memory then",
                )
            )
        elif r.name == me:
            continue  # this replica's own state is in its own check, fresher than its heartbeat
        elif r.last_error is not None:
            status = Status.ALERT if r.capacity and r.pending >= r.capacity / 2 else Status.WARN
            problems.append((status, f"replica {r.name} cannot write ({r.last_error}); {r.pending} rows wait in its memory"))
        elif r.capacity and r.pending >= r.capacity / 2:
            problems.append((Status.WARN, f"replica {r.name} is falling behind: {r.pending} of {r.capacity} buffered rows"))
        if r.name != me and r.dropped:
            problems.append((Status.ALERT, f"replica {r.name} dropped {r.dropped} rows (buffer full, or unwritable records)"))
    count = f"{len(live)} live replica{'s' if len(live) != 1 else ''}"
    if own.status is Status.OK and not problems:
        written, pending = sum(r.written for r in live), sum(r.pending for r in live)
        summary = f"{written} rows written by {count}, {pending} pending, none dropped."
        return CheckResult(own.name, Status.OK, summary, own.details)
    text = "; ".join(t for _, t in problems)
    head = own.summary if own.status is not Status.OK else f"{count} share{'s' if len(live) == 1 else ''} the store"
    summary = f"{head.rstrip('.')}; {text}." if text else head
    return CheckResult(own.name, worst([own.status, *(s for s, _ in problems)]), summary, own.details)


def fleet_environment_check(own: CheckResult, replicas: Sequence[Replica]) -> CheckResult:
    """The environment check widened to the fleet: a live replica whose libraries differ from the fleet's is named."""
    differences = _differences([r for r in replicas if _live(r)])
    if not differences:
        return own
    parts = []
    for name, changes in differences.items():
        shown = ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
        parts.append(f"replica {name} runs other libraries than the fleet: {shown}")
    text = "; ".join(parts)
    summary = f"{own.summary.rstrip('.')}; {text}." if own.status is not Status.OK else text[0].upper() + text[1:] + "."
    return CheckResult(own.name, worst([own.status, Status.WARN]), summary, own.details)


def _live(replica: Replica) -> bool:
    return replica.age <= STALE_AFTER


def _differences(live: Sequence[Replica]) -> dict[str, tuple[str, ...]]:
    """Per live replica whose libraries differ from the fleet's, the differences (fleet's -> its own)."""
    fingerprints = {r.name: _fingerprint(r.fingerprint) for r in live}
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], list[Replica]] = {}
    for r in live:  # oldest started first
        fp = fingerprints[r.name]
        groups.setdefault((fp.python, tuple(sorted(fp.packages.items()))), []).append(r)
    if len(groups) < 2:
        return {}
    fleet = max(groups.values(), key=len)  # the first of the largest: the one started first on a tie
    baseline = fingerprints[fleet[0].name]
    found: dict[str, tuple[str, ...]] = {}
    for r in live:
        if r in fleet:
            continue
        diff = diff_environment(baseline, fingerprints[r.name])
        changes = [f"Python {diff.python[0]} -> {diff.python[1]}"] if diff.python else []
        changes += [str(c) for c in (*diff.changed, *diff.missing)]
        added = sorted(set(fingerprints[r.name].packages) - set(baseline.packages))
        changes += [f"{name} {fingerprints[r.name].packages[name]} added" for name in added]
        found[r.name] = tuple(changes)
    return found


def _fingerprint(stored: str) -> Fingerprint:
    """A heartbeat's fingerprint; an empty one when it does not decode (a damaged row)."""
    try:
        data = json.loads(stored)
        return Fingerprint.from_json(data if isinstance(data, Mapping) else {})
    except (TypeError, ValueError, KeyError):
        return Fingerprint(python="", platform="")
