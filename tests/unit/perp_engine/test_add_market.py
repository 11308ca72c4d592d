"""PerpEngine.add_market: owner only, bounded parameters, ids from 0 in order."""

from ape import chain

from model.positions import MAX_MARKETS
from tests.unit.perp_engine.helpers import (
    USDC, WAD, assert_roles_same, deploy_feed, expect_ok, expect_revert, params, position, restamp_feed)


def test_add_market__owner__appends_the_next_id(twin, owner):
    e = twin.p.engine
    new = params(twin, 1, max_open_interest=7 * WAD)
    expect_ok(twin, owner, "add_market", new)
    assert e.market_count() == 3
    assert tuple(e.market_params(2))[10] == 7 * WAD
    assert e.market_state(2) == (0, 0, 0, 0, 0, 0, chain.blocks.head.timestamp, 0, 0)
    assert ("MarketAdded", {"market_id": 2, "feed": new[0]}) in twin.w.events
    assert e.add_market.call(new, sender=twin.p.timelock.address) == 3  # the owner is the timelock
    twin.assert_same()
    assert_roles_same(twin)


def test_add_market__stranger__reverts_not_owner(twin, stranger):
    expect_revert(twin, stranger, "add_market", params(twin, 0), reason="ownable: caller is not the owner")
    assert twin.p.engine.market_count() == 2


def test_add_market__bad_parameters__reverts_with_the_bound(twin, owner):
    expect_revert(twin, owner, "add_market", params(twin, 0, imf=WAD + 1), reason="params: imf")
    expect_revert(twin, owner, "add_market", params(twin, 0, max_price_age=0), reason="params: price age")
    assert twin.p.engine.market_count() == 2


def test_add_market__64_markets__the_65th_reverts(twin, owner):
    twin.accounts = [owner]  # 64 markets: compare the markets, not the absent positions
    for _ in range(MAX_MARKETS - 2):
        expect_ok(twin, owner, "add_market", params(twin, 1))
    assert twin.p.engine.market_count() == MAX_MARKETS
    expect_revert(twin, owner, "add_market", params(twin, 1), reason="params: too many markets")
    assert_roles_same(twin)


def test_add_market__feed_decimals__normalised_to_1e18_up_to_18(twin, owner, trader, keeper):
    feed18 = deploy_feed(twin, owner, 18, 2_500 * WAD + 123)
    feed0 = deploy_feed(twin, owner, 0, 2_500)
    feed19 = deploy_feed(twin, owner, 19, 2_500 * 10 * WAD)
    expect_revert(twin, owner, "add_market", params(twin, 1, feed=feed19.address), reason="params: feed decimals")
    expect_ok(twin, owner, "add_market", params(twin, 1, feed=feed18.address))
    expect_ok(twin, owner, "add_market", params(twin, 1, feed=feed0.address))
    expect_ok(twin, trader, "deposit", 1_000 * USDC)
    # Orders on both new markets; each executes at a later round of its feed
    # (Twin.restamp knows only the deployed protocol's feeds).
    ids = []
    for mid in (2, 3):
        ok, reason, oid = twin.request(trader, mid, WAD, 100 * USDC, 2_501 * WAD)
        assert ok, reason
        ids.append(oid)
    restamp_feed(twin, feed18, keeper)
    restamp_feed(twin, feed0, keeper)
    for oid in ids:
        assert twin.execute(keeper, oid) == ("executed", None)
    assert position(twin, trader, 2)[1] == 2_500 * WAD + 123
    assert position(twin, trader, 3)[1] == 2_500 * WAD
    twin.assert_same()
