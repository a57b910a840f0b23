"""Joining records to deployments and the ``measured`` values at every scope."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policy_engine.errors import InputErrors
from policy_engine.loading import Portfolio
from policy_engine.residency.aggregate import KEYS, PORTFOLIO_KEYS, in_window, measure
from policy_engine.residency.native import load_residency
from policy_engine.residency.records import ResidencyRecord
from policy_engine.sources import DirectorySource

AS_OF = datetime(2025, 6, 30, tzinfo=UTC)
FIRST = AS_OF - timedelta(days=30)

MODELS = {
    "chat": [
        ("1", "production", [("chat-use1", "chat", "us-east-1"), ("chat-euw1", "chat", "eu-west-1")]),
        ("2", "canary", [("chat-v2-canary", "chat", "us-east-1")]),
        ("3", "shadow", [("chat-v3-shadow", "chat", "us-east-1")]),
    ],
    "rank": [("1", "production", [("rank-use1", "rank", "us-east-1")])],
}


def day(
    n: int, deployment: str | None = "chat-use1", source: str = "native", **fields: Any
) -> ResidencyRecord:
    """A daily record for day ``n`` of the 30-day window (0 = 2025-05-31)."""
    start = FIRST + timedelta(days=n)
    data: dict[str, Any] = {
        "deployment_id": deployment,
        "window_start": start,
        "window_end": start + timedelta(days=1),
        "provenance": {"source": source},
        **fields,
    }
    if deployment is None:
        data.setdefault("unattributed_reason", "opencost:__idle__")
    if "cost" in fields and isinstance(fields["cost"], int | float):
        data["cost"] = {"total": float(fields["cost"]), "currency": "USD", "basis": "effective"}
    return ResidencyRecord.model_validate(data)


@pytest.fixture
def chat(tiny: Callable[..., Portfolio]) -> Portfolio:
    return tiny(MODELS)


def test_sums_run_rate_and_exact_keys(chat: Portfolio) -> None:
    records = [day(n, gpu_hours=24.0, warm_replica_hours=24.0, cost=10.0, coverage=1.0) for n in range(30)]
    measured = measure(chat, records, AS_OF)
    values = measured.by_target["chat@1/chat-use1"]
    assert values == {
        "gpu_hours": 720.0,
        "warm_replica_hours": 720.0,
        "cost": 300.0,
        "cost_monthly_run_rate": pytest.approx(300.0 * 730 / 720),
        "coverage": 1.0,
    }
    assert set(values) <= set(KEYS)
    # the version and the model carry the same sums; coverage counts every declared deployment
    assert measured.by_target["chat@1"]["cost"] == 300.0
    assert measured.by_target["chat@1"]["coverage"] == 0.5  # chat-euw1 has no data
    assert measured.by_target["chat"]["coverage"] == 0.25
    portfolio = measured.by_target["portfolio"]
    assert set(portfolio) <= set(PORTFOLIO_KEYS)
    assert portfolio["total_cost"] == 300.0
    assert portfolio["unattributed_cost"] == 0.0
    # targets without records are absent (the engine binds {})
    assert "rank" not in measured.by_target
    assert "rank@1/rank-use1" not in measured.by_target
    assert "chat@2" not in measured.by_target


def test_only_records_inside_the_window_count(chat: Portfolio) -> None:
    inside = [day(n, gpu_hours=1.0) for n in (0, 29)]
    before = day(-1, gpu_hours=100.0)
    after = day(30, gpu_hours=100.0)
    straddling = ResidencyRecord.model_validate(
        {
            "deployment_id": "chat-use1",
            "window_start": FIRST - timedelta(hours=12),
            "window_end": FIRST + timedelta(hours=12),
            "gpu_hours": 100.0,
        }
    )
    measured = measure(chat, [*inside, before, after, straddling], AS_OF)
    assert measured.by_target["chat@1/chat-use1"]["gpu_hours"] == 2.0
    # as-of aware: one day earlier, day 29 is outside and day -1 inside
    earlier = measure(chat, [*inside, before, after], AS_OF - timedelta(days=1))
    assert earlier.by_target["chat@1/chat-use1"]["gpu_hours"] == 101.0


def test_in_window_keeps_exactly_the_records_measure_counts(chat: Portfolio) -> None:
    """``check`` keeps only ``in_window`` records while loading: the facts must not change."""
    straddling = ResidencyRecord.model_validate(
        {
            "deployment_id": "chat-use1",
            "window_start": FIRST - timedelta(hours=12),
            "window_end": FIRST + timedelta(hours=12),
            "gpu_hours": 100.0,
        }
    )
    records = [day(n, gpu_hours=float(n + 10), cost=1.0) for n in range(-5, 35)] + [straddling]
    for as_of in (AS_OF, AS_OF - timedelta(days=1), AS_OF + timedelta(hours=6)):
        kept = [r for r in records if in_window(as_of)(r)]
        assert 0 < len(kept) < len(records)
        assert measure(chat, kept, as_of).by_target == measure(chat, records, as_of).by_target


def test_a_missing_field_is_omitted_not_zero(chat: Portfolio) -> None:
    measured = measure(chat, [day(n, gpu_hours=24.0) for n in range(3)], AS_OF)
    values = measured.by_target["chat@1/chat-use1"]
    assert values == {"gpu_hours": 72.0}
    assert isinstance(values["gpu_hours"], float)


def test_consecutive_days_below_the_utilisation_floor(chat: Portfolio) -> None:
    util = dict.fromkeys(range(30), 0.5)
    util.update(dict.fromkeys(range(22, 30), 0.05))  # the last 8 days idle
    util[10] = 0.01  # an earlier idle day does not join the run
    records = [day(n, gpu_hours=24.0, gpu_util_avg=u) for n, u in util.items()]
    measured = measure(chat, records, AS_OF)
    values = measured.by_target["chat@1/chat-use1"]
    assert values["days_util_below_floor"] == 8
    assert isinstance(values["days_util_below_floor"], int)
    # a day without data ends the run
    gap = [r for r in records if r.window_start != FIRST + timedelta(days=25)]
    assert measure(chat, gap, AS_OF).by_target["chat@1/chat-use1"]["days_util_below_floor"] == 4
    # the floor is a parameter
    assert measure(chat, records, AS_OF, util_floor=0.6).by_target["chat@1"]["days_util_below_floor"] == 30


def test_traffic_share_from_requests_and_low_traffic_days(chat: Portfolio) -> None:
    records = []
    for n in range(30):
        records.append(day(n, "chat-use1", requests=985 if n >= 20 else 900))
        records.append(day(n, "chat-v2-canary", requests=15 if n >= 20 else 100))
        records.append(day(n, "chat-v3-shadow", requests=1000))  # mirrored traffic
        records.append(day(n, "chat-euw1", requests=500))
    measured = measure(chat, records, AS_OF)
    canary = measured.by_target["chat@2/chat-v2-canary"]
    assert canary["traffic_share"] == pytest.approx((20 * 0.1 + 10 * 0.015) / 30, abs=1e-6)
    assert canary["days_low_traffic"] == 10  # 1.5% < 2% for the last 10 days
    assert canary["requests"] == 20 * 100 + 10 * 15
    # a shadow's share is mirrored / primary traffic, counted only for itself
    assert measured.by_target["chat@3"]["traffic_share"] == 1.0
    # the model serves all of its endpoints' traffic; regions are weighted by their requests
    assert measured.by_target["chat"]["traffic_share"] == pytest.approx(1.0)
    assert measured.by_target["chat@1"]["traffic_share"] == pytest.approx(
        (20 * (900 + 500) / 1500 + 10 * (985 + 500) / 1500) / 30, abs=1e-6
    )
    assert measure(chat, records, AS_OF, low_traffic_share=0.2).by_target["chat@2"]["days_low_traffic"] == 30


def test_recorded_traffic_share_wins_over_derived(chat: Portfolio) -> None:
    records = [day(n, "chat-use1", requests=900, traffic_share=0.5) for n in range(30)]
    records += [day(n, "chat-v2-canary", requests=100) for n in range(30)]
    measured = measure(chat, records, AS_OF)
    assert measured.by_target["chat@1/chat-use1"]["traffic_share"] == 0.5
    assert measured.by_target["chat@2/chat-v2-canary"]["traffic_share"] == 0.1


def test_unknown_deployments_are_reported_not_dropped(chat: Portfolio) -> None:
    ghost = day(3, "ghost-use1", cost=7.0)
    idle = day(3, None, cost=5.0)
    measured = measure(chat, [day(3, cost=10.0), ghost, idle], AS_OF)
    assert measured.unknown == [ghost]
    assert measured.unattributed == [idle]
    assert measured.unknown_deployments() == {"ghost-use1": {"records": 1, "cost": 7.0, "first_seen": None}}
    portfolio = measured.by_target["portfolio"]
    assert portfolio["cost"] == 10.0
    assert portfolio["unattributed_cost"] == 12.0
    assert portfolio["total_cost"] == 22.0


def test_records_join_through_selectors(chat: Portfolio) -> None:
    # imported without the portfolio: the id is the label value; the labels carry the selector
    record = day(1, "chat-use1-pods", gpu_hours=5.0, labels={"app_example_com_deployment": "chat-use1-pods"})
    measured = measure(chat, [record], AS_OF)
    assert measured.by_target["chat@1/chat-use1"]["gpu_hours"] == 5.0
    assert measured.unknown == []


def test_sources_merge_field_by_field(chat: Portfolio) -> None:
    records = [
        day(4, source="opencost", gpu_hours=24.0, cost=10.0, gpu_util_avg=0.2),
        day(4, source="focus", cost=8.0, gpu_hours=30.0),
        day(4, source="prometheus", gpu_hours=23.0, gpu_util_avg=0.5, requests=10),
    ]
    values = measure(chat, records, AS_OF).by_target["chat@1/chat-use1"]
    assert values["cost"] == 8.0  # FOCUS is the billing truth
    assert values["gpu_hours"] == 24.0  # OpenCost first for allocation
    assert values["gpu_util_avg"] == 0.5  # DCGM via Prometheus first for utilisation
    assert values["requests"] == 10.0


def test_a_record_spanning_days_is_spread(chat: Portfolio) -> None:
    week = ResidencyRecord.model_validate(
        {
            "deployment_id": "chat-use1",
            "window_start": FIRST,
            "window_end": FIRST + timedelta(days=7),
            "gpu_hours": 70.0,
            "gpu_util_avg": 0.1,
        }
    )
    measured = measure(chat, [week], AS_OF)
    assert measured.by_target["chat@1/chat-use1"]["days_util_below_floor"] == 7
    assert [row["gpu_hours"] for row in measured.series["chat@1/chat-use1"]] == [10.0] * 7


def test_hourly_records_add_up_as_one_daily_record(chat: Portfolio) -> None:
    fields = {"gpu_util_avg": 0.25, "traffic_share": 0.5, "coverage": 1.0}
    hourly = [
        ResidencyRecord.model_validate(
            {
                "deployment_id": "chat-use1",
                "window_start": FIRST + timedelta(days=2, hours=hour),
                "window_end": FIRST + timedelta(days=2, hours=hour + 1),
                "provenance": {"source": "prometheus"},
                "gpu_hours": 1.0,
                "requests": 10,
                **fields,
            }
        )
        for hour in range(24)
    ]
    daily = [day(2, source="prometheus", gpu_hours=24.0, requests=240, **fields)]
    by_hour, by_day = measure(chat, hourly, AS_OF), measure(chat, daily, AS_OF)
    assert by_hour.by_target == by_day.by_target
    assert by_hour.series == by_day.series
    assert by_hour.series["chat@1/chat-use1"][0]["gpu_hours"] == 24.0


def test_cost_in_another_currency_is_an_input_error(chat: Portfolio) -> None:
    euro = day(2, cost={"total": 1.0, "currency": "EUR", "basis": "effective"}).located(
        "residency/eu.jsonl", 4
    )
    with pytest.raises(InputErrors) as caught:
        measure(chat, [euro], AS_OF)
    (error,) = caught.value.errors
    assert error.render().startswith(
        "residency/eu.jsonl:4:1: cost in EUR, but the portfolio's currency is USD"
    )


# ---------------------------------------------------------------------------- the example portfolio


def test_the_example_portfolio(acme: Portfolio, acme_root: Any) -> None:
    records = load_residency(DirectorySource(acme_root), "examples/acme-portfolio/")
    measured = measure(acme, records, AS_OF)
    by = measured.by_target
    legacy = by["fraud-scorer@11/fraud-v11-usc1"]
    assert legacy["gpu_util_avg"] < 0.01
    assert legacy["days_util_below_floor"] == 30
    assert legacy["warm_replica_hours"] == 720.0
    canary = by["support-intent-classifier@8"]
    assert canary["gpu_util_avg"] == pytest.approx(0.06, abs=0.01)
    assert canary["traffic_share"] == pytest.approx(0.03, abs=0.005)
    assert canary["days_util_below_floor"] == 30
    assert by["search-reranker@3/rr-v3-use1"]["gpu_util_avg"] > 0.6
    assert by["search-reranker@3/rr-v3-use1"]["days_util_below_floor"] == 0
    assistant = by["assistant-llm@2"]
    assert 61000.0 < assistant["cost_monthly_run_rate"] < 61000.0 * 1.2  # a little above the estimate
    for target, values in by.items():
        assert set(values) <= set(PORTFOLIO_KEYS if target == "portfolio" else KEYS), target
        assert values["coverage"] > 0.9
        for key, value in values.items():
            assert isinstance(value, int if key.startswith("days_") else float), (target, key)
    assert measured.unknown == []
    assert {r.unattributed_reason for r in measured.unattributed} == {
        "opencost:__idle__",
        "opencost:__unallocated__",
    }
    portfolio = by["portfolio"]
    assert 0 < portfolio["unattributed_cost"] < 0.05 * portfolio["total_cost"]


_ONE_DAY_VALUES: list[dict[str, Any]] = [
    {},
    {"gpu_hours": 24.0, "gpu_util_avg": 0.31, "traffic_share": 0.2, "coverage": 0.75},
    {"gpu_hours": 0.0, "gpu_util_avg": 0.5, "requests": 7, "tokens_in": 3, "tokens_out": 0},
    {"gpu_hours": -0.0, "warm_replica_hours": 3, "gpu_util_avg": 0.0, "coverage": 1.0},
    {"cost": {"total": 19.2, "currency": "USD", "basis": "effective"}, "traffic_share": 1.0},
    {"gpu_hours": 1e-300, "gpu_util_avg": 1.0, "coverage": 0.999999, "requests": 2**53 + 1},
]


@pytest.mark.parametrize("values", _ONE_DAY_VALUES)
@pytest.mark.parametrize("hours", [24.0, 1.0, 0.25, 1e-9])
def test_a_day_of_one_record_gives_what_adding_it_up_gives(values: dict[str, Any], hours: float) -> None:
    """The shortcut for a day with a single record must stay the general path's exact result:
    the same values, bit for bit, in the same order."""
    from policy_engine.residency import aggregate

    record = day(2, **values)
    fields = dict(record.__dict__)
    shortcut = aggregate._one_record_day(fields, hours)
    general = aggregate._as_values(aggregate._add({}, fields, 1.0, hours))
    assert list(shortcut.items()) == list(general.items())
    assert [repr(v) for v in shortcut.values()] == [repr(v) for v in general.values()]
