"""The convergence benchmark's attribution of an added VM to the discovery poll that saw it. Its
flake ("no poll after the add in the emulator's request log"): the emulator applies an add before its
answer reaches the caller, so a poll can run inside that gap, see the VM and get it to Envoy before
any poll starts after the caller's clock says the add is done."""

from __future__ import annotations

from typing import Any

from bench.convergence import discovery_polls, seeing_poll


def call(method: str, at: float) -> dict[str, Any]:
    return {"method": method, "at": at}


def polls_at(*starts: float) -> list[list[dict[str, Any]]]:
    log = []
    for start in starts:
        log += [call("instanceGroups.listInstances", start), call("instances.list", start + 0.01)]
    return discovery_polls(log)


def test_a_poll_inside_the_add_gap_that_got_the_vm_to_envoy_is_the_one() -> None:
    # Add sent at 10.0, applied at once, its answer back at 10.05 (a loaded machine); a poll ran at
    # 10.02 and Envoy listed the VM at 10.04 -- before the caller even had the add's answer.
    polls = polls_at(9.0, 10.02, 11.0)
    saw = seeing_poll(polls, before=10.0, after=10.05, seen=10.06)
    assert saw is not None and saw[0]["at"] == 10.02


def test_a_poll_entirely_after_the_add_wins_over_one_in_the_gap() -> None:
    # The poll in the gap may have read the group before the add was applied; one that began after
    # the add's answer certainly saw it.
    polls = polls_at(10.02, 11.0)
    saw = seeing_poll(polls, before=10.0, after=10.05, seen=11.2)
    assert saw is not None and saw[0]["at"] == 11.0


def test_polls_before_the_add_or_after_envoy_listed_it_are_not_candidates() -> None:
    polls = polls_at(9.0, 12.0)
    assert seeing_poll(polls, before=10.0, after=10.05, seen=11.5) is None
