"""`make demo`, small: the same code path (scripts/demo.run_demo, the keeper
process, the replay check, the report) on a few dozen accounts, so it runs in
CI. The scenario is scenarios/crash.yaml with fewer accounts and a smaller
insurance fund, so the crash still drains the fund and reaches ADL."""

import copy
import re

import pytest

from scripts.demo import ROOT, load_scenario, run_demo


@pytest.fixture(scope="module")
def small_scenario():
    sc = copy.deepcopy(load_scenario(ROOT / "scenarios" / "crash.yaml"))
    sc["name"] = "btc-crash-small"
    sc["traders"]["count"] = 48
    sc["lps"].update(count=3, deposit=[100_000, 300_000])
    sc["insurance_fund"] = 500
    sc["warmup"]["prices"] = sc["warmup"]["prices"][:4]
    sc["crash"] = [[dt // 3, price] for dt, price in sc["crash"]]  # the same path, 3x faster
    sc["keeper"]["step_timeout"] = 30
    return sc


@pytest.fixture(scope="module")
def demo(small_scenario, owner, tmp_path_factory):
    return run_demo(small_scenario, owner, "process", tmp_path_factory.mktemp("reports"))


def test_demo__model_replay__same_events_and_state_as_chain(demo):
    assert demo.replay_mismatches == []
    assert demo.state_diffs == []
    replayed = set(demo.replayer.stats.by_verb)
    assert {"token.mint", "vault.deposit", "engine.deposit", "engine.request_order", "engine.execute_order",
            "engine.set_tp_sl", "feed.set_answer", "engine.liquidate", "engine.execute_tp_sl"} <= replayed
    # Every trader's order was replayed to the same outcome: executed, none cancelled.
    assert demo.replayer.stats.by_verb["engine.request_order"] == demo.replayer.stats.by_verb["engine.execute_order"] == 48
    assert len(demo.replayer.order_outcomes) == 48
    assert all(status == "executed" for status, _ in demo.replayer.order_outcomes.values())
    assert demo.ok


def test_demo__keeper_process__did_the_work_and_was_stopped(demo):
    assert demo.keeper_mode == "process", demo.warnings
    assert demo.warnings == []
    assert demo.keeper_exit is not None
    assert demo.keeper_leftovers == 0
    keeper_address = demo.data["meta"]["keeper_account"]
    assert set(demo.summary["liquidations_by"]) == {keeper_address}
    # The traders' orders were executed by the keeper process, each in the
    # first block after the round later than its request.
    assert demo.summary["orders_executed_by"] == {keeper_address: 48}
    assert demo.summary["orders_cancelled"] == 0
    assert demo.summary["order_blocks_after_round"] == {1: 48}


def test_demo__crash__liquidates_drains_fund_and_deleverages(demo):
    s = demo.summary
    assert s["liquidations"] > 0 and s["liquidations_with_bad_debt"] > 0
    assert s["fund_drawn"] > 0
    assert s["adl_fills"] > 0 and s["haircuts"] > 0
    assert s["stop_losses_hit"] > 0
    assert s["take_profits_hit"] > 0


def test_demo__bad_debt__covered_by_fund_haircuts_and_socialization(demo):
    s = demo.summary
    assert s["bad_debt"] == s["fund_drawn"] + s["haircuts"] + s["socialized"] + s["adl_pending"]
    assert s["bad_debt_accounted"]


def test_demo__adl__takes_targets_in_model_rank_order(demo):
    rows = demo.data["adl"]
    assert rows and all(r["rank"] is not None for r in rows)
    assert demo.summary["adl_in_rank_order"]
    for r in rows:  # ADL takes profitable opposite positions only: shorts in a crash
        assert r["size"] < 0


def test_demo__leverage_from_events__equals_the_plan(demo):
    planned = {t["account"]: t["leverage"] for t in demo.data["meta"]["traders"]}
    rows = [*demo.data["liquidations"], *({"account": r["target"], "leverage": r["leverage"]} for r in demo.data["adl"])]
    assert rows
    for r in rows:
        assert r["leverage"] == planned[r["account"]]


def test_demo__open_interest_from_events__equals_chain(demo):
    s = demo.summary
    assert s["oi_from_events"] == s["oi_on_chain"]


def test_demo__report__has_three_charts_and_every_deleveraged_position(demo):
    html = demo.report_path.read_text()
    assert len(re.findall(r'<img alt="(price|fund|oi)" src="data:image/png;base64,', html)) == 3
    for name in ("price", "fund", "oi"):
        png = (demo.report_path.parent / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
    table = html.split("Who was deleveraged")[1].split("</table>")[0]
    assert table.count("<tr>") - 1 == demo.summary["adl_fills"]
    assert "PASS" in html
