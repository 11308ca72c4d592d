"""PerpEngine.set_pauser, pause and unpause: a pause stops new risk only."""

from tests.unit.perp_engine.helpers import (
    USDC, WAD, ZERO, assert_roles_same, btc, expect_ok, expect_revert, position)

PRICE = 80_000 * WAD


def test_set_pauser__stranger__reverts_not_owner(twin, stranger):
    expect_revert(twin, stranger, "set_pauser", stranger, reason="ownable: caller is not the owner")
    assert twin.p.engine.pauser() == ZERO


def test_set_pauser__owner__names_the_pauser_and_logs(twin, owner, pauser):
    expect_ok(twin, owner, "set_pauser", pauser)
    assert twin.p.engine.pauser() == pauser.address
    assert twin.w.events[-1] == ("PauserSet", {"pauser": pauser.address})
    assert_roles_same(twin)


def test_pause__stranger__reverts_not_pauser(twin, owner, pauser, stranger):
    expect_ok(twin, owner, "set_pauser", pauser)
    expect_revert(twin, stranger, "pause", reason="engine: not pauser")
    assert not twin.p.engine.paused()


def test_pause__pauser_or_owner__pauses(twin, owner, pauser):
    expect_ok(twin, owner, "set_pauser", pauser)
    for who in (pauser, owner):
        expect_ok(twin, who, "pause")
        assert twin.p.engine.paused()
        expect_revert(twin, who, "pause", reason="pausable: contract is paused")
        expect_ok(twin, who, "unpause")
        assert not twin.p.engine.paused()
    assert_roles_same(twin)


def test_unpause__stranger__reverts_not_pauser(twin, owner, stranger):
    expect_ok(twin, owner, "pause")
    expect_revert(twin, stranger, "unpause", reason="engine: not pauser")
    assert twin.p.engine.paused()


def test_unpause__not_paused__reverts(twin, owner):
    expect_revert(twin, owner, "unpause", reason="pausable: contract is not paused")


def test_set_pauser__replaced__old_pauser_loses_the_right(twin, owner, pauser, stranger):
    expect_ok(twin, owner, "set_pauser", pauser)
    expect_ok(twin, owner, "set_pauser", stranger)
    expect_revert(twin, pauser, "pause", reason="engine: not pauser")
    expect_ok(twin, stranger, "pause")


def test_pause__blocks_open_position_and_remove_margin(twin, owner, trader):
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_ok(twin, trader, "open_position", 0, WAD, 2_000 * USDC, PRICE)
    expect_ok(twin, owner, "pause")
    expect_revert(twin, trader, "open_position", 0, WAD, 2_000 * USDC, PRICE, reason="pausable: contract is paused")
    expect_revert(twin, trader, "open_position", 1, -WAD, 100 * USDC, 0, reason="pausable: contract is paused")
    expect_revert(twin, trader, "remove_margin", 0, 100 * USDC, reason="pausable: contract is paused")
    expect_ok(twin, owner, "unpause")
    expect_ok(twin, trader, "remove_margin", 0, 100 * USDC)
    expect_ok(twin, trader, "open_position", 0, WAD, 2_000 * USDC, PRICE)
    twin.assert_same()


def test_pause__deposit_withdraw_add_margin_close_and_liquidate_still_work(twin, owner, trader, other_trader, keeper):
    e = twin.p.engine
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_ok(twin, trader, "open_position", 0, WAD, 2_000 * USDC, PRICE)
    expect_ok(twin, other_trader, "deposit", 10_000 * USDC)
    expect_ok(twin, other_trader, "open_position", 0, WAD, 1_000 * USDC, PRICE)
    expect_ok(twin, owner, "pause")

    expect_ok(twin, trader, "deposit", 1_000 * USDC)
    expect_ok(twin, trader, "withdraw", 500 * USDC)
    expect_ok(twin, trader, "add_margin", 0, 300 * USDC)
    assert position(twin, trader)[2] == 2_300 * USDC
    expect_ok(twin, trader, "close_position", 0, -WAD // 2, 0)
    expect_ok(twin, trader, "close_position", 0, -WAD // 2, 0)
    assert position(twin, trader)[0] == 0
    twin.assert_same()

    # A 1% fall puts the 80x long under maintenance: liquidation works paused.
    twin.set_price(0, btc(79_200), owner)
    assert e.is_liquidatable(other_trader, 0)
    expect_ok(twin, keeper, "liquidate", other_trader, 0, [])
    assert position(twin, other_trader)[0] == 0
    expect_ok(twin, trader, "withdraw", e.free_collateral(trader))
    assert e.free_collateral(trader) == 0
    twin.assert_same()
