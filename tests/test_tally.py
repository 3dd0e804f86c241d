"""The recent requests' pipeline summary moved on as they move (guarded_serving/tally.py): always summarise's."""

from __future__ import annotations

import random
from collections import deque

import pytest

from guarded_serving import tally as tally_module
from guarded_serving.stages import BATCH_SIZE, RecentRequest, summarise
from guarded_serving.tally import RecentTally


def request(rng: random.Random) -> RecentRequest:
    """Traffic as a service sees it: answered requests timing three stages (a batched one also its batch size),
    rejections that stopped at validation, errors naming the stage that failed, now and then a stage of the
    user's own, durations with ties."""
    kind = rng.choices(["ok", "rejected", "error", "custom"], [80, 10, 5, 5])[0]
    duration = lambda: round(rng.expovariate(1.0), rng.choice([1, 3]))  # noqa: E731
    if kind == "rejected":
        return RecentRequest("rejected", duration(), {"validate": duration()}, None, ("age",))
    stages = {"validate": duration(), "predict": duration()}
    if kind == "error":
        return RecentRequest("error", duration(), stages, rng.choice(["predict", "serialize"]))
    if kind == "custom":
        stages = {"preprocess": duration(), **stages}
    stages["serialize"] = duration()
    if rng.random() < 0.2:
        stages[BATCH_SIZE] = float(rng.randint(1, 8))
    return RecentRequest("ok", duration(), stages)


@pytest.mark.parametrize("listed", ["oldest first", "newest first"])
def test_the_summary_moved_on_is_summarise_s_after_every_move(listed: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    afresh: list[int] = []
    tally_ = tally_module.RecentTally.__dict__["_tally"]
    monkeypatch.setattr(RecentTally, "_tally", lambda self, recent: afresh.append(len(recent)) or tally_(self, recent))
    kept: deque[RecentRequest] = deque(maxlen=300)  # a recorder's bounded list of recent requests
    tally = RecentTally()
    for step in range(400):
        for _ in range(rng.choice([0, 1, 1, 2, 5, 40]) if step else 250):
            kept.append(request(rng))
        recent = list(kept) if listed == "oldest first" else list(reversed(kept))

        assert tally.summary(recent) == summarise(recent), step

    assert afresh[0] == 250
    assert len(afresh) < 40  # the first, the moves of more than a quarter of the list, and no other


def test_a_list_that_is_not_the_last_one_moved_along_is_summarised_afresh() -> None:
    rng = random.Random(8)
    first = [request(rng) for _ in range(100)]
    other = [request(rng) for _ in range(100)]
    tally = RecentTally()
    tally.summary(first)

    shuffled = first[50:] + first[:50]  # the same requests in another order: not a move

    assert tally.summary(other) == summarise(other)
    assert tally.summary(shuffled) == summarise(shuffled)
    assert tally.summary([]) == summarise([])


def test_a_value_not_where_the_tally_holds_it_makes_a_fresh_summary() -> None:
    rng = random.Random(9)
    recent = [request(rng)._replace(latency_ms=123.456), *(request(rng) for _ in range(49))]  # a latency no other has
    tally = RecentTally()
    tally.summary(recent)
    tally._sorted[None].remove(recent[0].latency_ms)  # as if counted wrong: the next move cannot take it out

    moved = [*recent[1:], request(rng)]

    assert tally.summary(moved) == summarise(moved)


def test_stages_that_come_and_go_leave_nothing_behind() -> None:
    """A stage named per request (a user's f-string, say): the tally holds the names of the list it was given."""
    tally = RecentTally()
    kept: deque[RecentRequest] = deque(maxlen=50)
    for i in range(500):
        kept.append(RecentRequest("error", 1.0 + i % 7, {f"step {i}": 0.5}, f"step {i}"))
        recent = list(kept)
        assert tally.summary(recent) == summarise(recent)

    assert len(tally._sorted) == 51  # fifty stages and the latencies
    assert len(tally._failures) == 50
