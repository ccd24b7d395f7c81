"""`llmops watch`'s failover/failback counting: a pure state machine over "which backend served"."""

from __future__ import annotations

import pytest

from llmops.watch.state import BackendTracker, Tally, Transitions

P, S = "inference-chat", "inference-code"


def run(seq: list[str | None], primary: str | None = P, secondaries: frozenset[str] = frozenset({S})):
    t = BackendTracker(primary, secondaries)
    moves = [t.observe(b) for b in seq]
    return t, moves


def test_failover_then_failback() -> None:
    t, moves = run([P, P, S, S, S, P, P])
    assert (t.failovers, t.failbacks) == (1, 1)
    assert moves == [None, None, "failover", None, None, "failback", None]
    assert not t.on_secondary and t.backend == P


def test_on_secondary_while_the_secondary_serves() -> None:
    t = BackendTracker(P, frozenset({S}))
    assert not t.on_secondary                    # nothing seen yet: not on the secondary
    t.observe(P)
    assert not t.on_secondary
    t.observe(S)
    assert t.on_secondary


def test_a_probe_without_an_answer_changes_nothing() -> None:
    # a blip (gateway timeout) neither resets "on the secondary" nor counts a move
    t, moves = run([P, S, None, None, S, None, P])
    assert (t.failovers, t.failbacks) == (1, 1)
    t, _ = run([P, S, None])
    assert t.on_secondary and t.backend == S


def test_a_failover_across_failed_probes_is_still_one() -> None:
    t, moves = run([P, None, None, S])
    assert t.failovers == 1 and moves[-1] == "failover"


def test_started_mid_outage_counts_no_failover_it_did_not_see() -> None:
    t, moves = run([S, S, P])
    assert (t.failovers, t.failbacks) == (0, 1)
    assert moves == [None, None, "failback"]


def test_an_unknown_backend_is_neither_and_no_move() -> None:
    t, moves = run([P, "10.0.0.9", S, "10.0.0.9", P])
    assert (t.failovers, t.failbacks) == (0, 0)
    assert moves == [None] * 5
    t, _ = run(["10.0.0.9"])
    assert not t.on_secondary


def test_flapping_counts_every_move() -> None:
    t, _ = run([P, S, P, S, P, S])
    assert (t.failovers, t.failbacks) == (3, 2)
    assert t.on_secondary


def test_several_secondaries() -> None:
    t, _ = run([P, "b", "c", P], secondaries=frozenset({"b", "c"}))
    assert (t.failovers, t.failbacks) == (1, 1)


def test_no_primary_in_the_stack_never_counts() -> None:
    t, _ = run([S, "x", S], primary=None)
    assert (t.failovers, t.failbacks) == (0, 0)
    assert t.on_secondary


def test_follow_keeps_history_with_new_roles() -> None:
    t, _ = run([P, S])
    t.follow(S, frozenset({P}))                  # roles swapped by a relabel: S is now primary
    assert not t.on_secondary
    assert t.observe(P) == "failover" and t.failovers == 2


def test_tally_counts_probes_and_failures() -> None:
    t = Tally()
    for ok in (True, False, True, False, False):
        t.count("rag", ok)
    t.count("qdrant", True)
    assert t.probes == {"rag": 5, "qdrant": 1}
    assert t.failures == {"rag": 3, "qdrant": 0}


@pytest.mark.parametrize("seq, edges", [
    ([True, True, False, False, True], [None, None, "down", None, "up"]),
    ([False, True], [None, "up"]),        # the first reading is no edge
])
def test_transitions(seq: list[bool], edges: list[str | None]) -> None:
    tr = Transitions()
    assert [tr.observe("svc", v) for v in seq] == edges
