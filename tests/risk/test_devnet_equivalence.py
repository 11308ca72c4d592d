"""Lab scenarios of 300 accounts played on the devnet contracts: the
lab's calls (its keeper's liquidations with the engine's ADL ranking,
deleverage continuations, TP/SL executions, every order) sent to the chain
at the lab's timestamps give the same liquidations, fund draws, ADL fills,
haircuts and socialized loss, to the unit, event for event. Two books: a
60% long crowd (the fund runs dry, ADL covers the rest) and a 90% long one
(too few winners: ADL runs out and the rest is socialized).

About 8 s each; also run alone by `make risk-check`."""

import pytest
from ape import chain

from bots import devnet as D
from risk import devnet as RD
from risk.book import BookSpec
from risk.lab import Scenario
from scripts.deploy import deploy_protocol


@pytest.mark.parametrize("long_percent", [60, 90])
def test_lab_scenario__replayed_on_the_devnet__same_liquidations_draws_adl_and_loss(owner, keeper, lp, long_percent):
    sc = Scenario(book=BookSpec(accounts=300, insurance_fund=2_000, long_percent=long_percent), path="seed", seed=7)
    p = deploy_protocol(owner, config=RD.network_config(sc))
    node = D.Node(chain.provider.uri)
    traders = sorted((D.trader_address(f"risk-{i}") for i in range(300)), key=lambda a: int(a, 16))
    t0 = chain.blocks.head.timestamp + 3_600
    run = RD.lab_run(sc, t0, traders)
    lab = run.result()
    assert lab["liquidations"] > 50 and lab["adl_fills"] > 0, "the scenario must reach ADL"
    if long_percent == 90:
        assert lab["socialized_loss"] > 0, "the crowded book must run ADL out of winners"

    RD.setup(node, p, run, owner, lp)
    assert chain.blocks.head.timestamp < run.calls[0][0]
    chain_events, chain_cancelled = RD.replay(node, p, run, keeper)
    lab_events = RD.lab_events(run, keeper)
    assert chain_cancelled == RD.lab_cancelled(run), "the chain cancelled other orders than the lab"

    m_chain, m_lab = RD.metrics(chain_events), RD.metrics(lab_events)
    assert m_chain == m_lab
    assert m_lab["liquidations"] == lab["liquidations"] and m_lab["adl_fills"] == lab["adl_fills"]
    assert sum(m_lab["fund_draws"]) == lab["fund_drawn"] and m_lab["socialized_loss"] == lab["socialized_loss"]
    assert chain_events == lab_events
    assert p.token.balanceOf(p.insurance_fund) == lab["fund_end"]
