"""The pure fault-switch rules: how faults are used up, validated and shown."""

from __future__ import annotations

import pytest

from proxy.standin.faults import (
    ApiFault,
    FaultError,
    FaultState,
    describe,
    next_api_fault,
    next_token_fault,
    with_changes,
)


def test_token_faults_are_used_up_one_per_request() -> None:
    state = FaultState(fail_token_requests=2, fail_token_mode="500")
    first, state = next_token_fault(state)
    second, state = next_token_fault(state)
    third, state = next_token_fault(state)
    assert (first, second, third) == ("500", "500", None)
    assert state.fail_token_requests == 0


def test_counted_api_faults_come_before_the_window_and_the_window_is_not_used_up() -> None:
    state = FaultState(fail_api_requests=1, fail_api_until=20.0, fail_api_status=429)
    first, state = next_api_fault(state, now=10.0)
    assert first == ApiFault(429, 1)
    second, state = next_api_fault(state, now=10.0)
    assert second == ApiFault(429, 10)
    third, state = next_api_fault(state, now=19.5)
    assert third == ApiFault(429, 1)
    assert next_api_fault(state, now=20.0)[0] is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"fail_token_requests": -1}, "fail_token_requests"),
        ({"fail_token_requests": True}, "fail_token_requests"),
        ({"fail_token_requests": 1.5}, "fail_token_requests"),
        ({"fail_token_mode": "slow"}, "fail_token_mode"),
        ({"latency_seconds": "1"}, "latency_seconds"),
        ({"latency_seconds": 301}, "latency_seconds"),
        ({"fail_api_seconds": -1}, "fail_api_seconds"),
        ({"fail_api_status": 500}, "fail_api_status"),
        ({"retry_after_seconds": -1}, "retry_after_seconds"),
        ({"explode": 1}, "explode"),
    ],
)
def test_bad_switch_values_are_refused(changes: dict[str, object], field: str) -> None:
    with pytest.raises(FaultError) as caught:
        with_changes(FaultState(), changes, now=0.0)
    assert caught.value.field == field


def test_switch_values_are_normalised() -> None:
    state = with_changes(
        FaultState(),
        {
            "fail_token_mode": 500,
            "fail_api_status": "429",
            "fail_api_seconds": 5,
            "latency_seconds": 1,
        },
        now=100.0,
    )
    assert (state.fail_token_mode, state.fail_api_status) == ("500", 429)
    assert (state.fail_api_until, state.latency_seconds) == (105.0, 1.0)
    assert describe(state, now=101.0)["fail_api_seconds"] == 4.0
    assert with_changes(state, {"fail_api_seconds": 0}, now=101.0).fail_api_until == 0.0
