"""Oracle hygiene (issue 15, SPEC 12 bullets 3-4) on the model: price bounds,
the heartbeat and its buffer, the fallback feed, the sequencer gate and the
feed-jump bound, each with bad inputs that revert with their reason and
change nothing; and the owner's feed-swap attack, measured.

The contracts raise the same reasons (model/positions.py names the function
each mirrors); tests/stateful/test_oracle_revm.py replays these rules on
chain and model together."""

import pytest

from model import positions as P
from model.fixed_point import Revert
from model.mocks import sequencer_feed
from model.protocol import clone
from tests.model.worlds import (
    KEEPER, OWNER, TRADER, USDC, WAD, address, advance, feed_address, make_world)

HEARTBEAT = 3000
MAX_AGE = 3600  # the devnet's max_price_age: heartbeat + a 600 s buffer
FALLBACK = address(0xFA11)
SEQUENCER = address(0x5E0)
BTC = 80_000 * WAD


def answer(usd):
    return usd * 10**8


def oracle(lo=1_000 * WAD, hi=1_000_000 * WAD, heartbeat=HEARTBEAT, fallback=P.ZERO, fallback_max_age=0):
    return P.OracleParams(lo, hi, heartbeat, fallback, fallback_max_age)


@pytest.fixture
def w():
    w = make_world()
    w.add_feed(FALLBACK, 8, answer(80_000))
    w.call(OWNER, "set_oracle", 0, oracle(fallback=FALLBACK, fallback_max_age=MAX_AGE))
    return w


def state(w):
    return clone((w.e, w.token, w.v, w.feeds))


def reverts(w, sender, verb, *args, reason):
    """`verb` reverts `reason` and leaves the world exactly as it was."""
    before = state(w)
    with pytest.raises(Revert) as e:
        w.call(sender, verb, *args)
    assert e.value.reason == reason
    assert state(w) == before


BUY = 81_000 * WAD  # acceptable price of a buy (the fee is escrowed at it)


def restamp(w, dt=0):
    """Time passes; every price feed (not the sequencer) gets a fresh round."""
    w.now += dt
    for a, f in w.feeds.items():
        if a != SEQUENCER:
            f.set_answer(f.answer, w.now)


def open_long(w, trader, size, margin):
    oid = w.call(trader, "request_order", 0, size, margin, BUY)
    advance(w, 1)
    w.call(KEEPER, "execute_order", oid)
    return oid


# ---------------------------------------------------------------- bounds


def test_price__outside_min_max__is_bad_inside_and_at_the_edges_prices(w):
    w.feeds[FALLBACK].set_answer(0, w.now)  # no fallback to hide behind
    for usd, ok in ((999, False), (1_000, True), (1_000_000, True), (1_000_001, False)):
        w.set_answer(feed_address(0), answer(usd))
        if ok:
            assert w.view("oracle_round", 0) == (usd * WAD, w.now, MAX_AGE)
        else:
            assert w.view("oracle_round", 0)[0] == 0
            with pytest.raises(Revert, match="bad price"):
                P._price(w, 0, True)


def test_set_oracle__bad_inputs__revert_and_change_nothing(w):
    f = FALLBACK
    cases = [
        (oracle(lo=0), "oracle: bounds"),
        (oracle(lo=5 * WAD, hi=5 * WAD), "oracle: bounds"),
        (oracle(hi=P.MAX_PRICE), "oracle: bounds"),
        (oracle(heartbeat=0), "oracle: heartbeat"),
        (oracle(heartbeat=MAX_AGE), "oracle: heartbeat"),  # no buffer left
        (oracle(lo=90_000 * WAD), "oracle: bounds exclude price"),  # would declare a sound primary broken
        (oracle(hi=79_999 * WAD), "oracle: bounds exclude price"),
        (oracle(fallback=feed_address(0), fallback_max_age=MAX_AGE), "oracle: fallback is primary"),
        (oracle(fallback=f, fallback_max_age=0), "oracle: fallback age"),
        (oracle(fallback=f, fallback_max_age=P.MAX_PRICE_AGE + 1), "oracle: fallback age"),
        (oracle(fallback_max_age=60), "oracle: fallback age"),  # an age without a fallback
    ]
    for o, reason in cases:
        reverts(w, OWNER, "set_oracle", 0, o, reason=reason)
    reverts(w, TRADER, "set_oracle", 0, oracle(), reason="ownable: caller is not the owner")
    reverts(w, OWNER, "set_oracle", 2, oracle(), reason="market: unknown")
    w.feeds[f].set_answer(answer(84_001), w.now)  # 5.00125% above the primary
    reverts(w, OWNER, "set_oracle", 0, oracle(fallback=f, fallback_max_age=MAX_AGE), reason="oracle: fallback jump")
    w.feeds[f].set_answer(answer(84_000), w.now)  # exactly 5%: accepted
    w.call(OWNER, "set_oracle", 0, oracle(fallback=f, fallback_max_age=MAX_AGE))
    w.feeds[f].set_answer(0, w.now)
    reverts(w, OWNER, "set_oracle", 0, oracle(fallback=f, fallback_max_age=MAX_AGE), reason="oracle: fallback broken")


def test_set_market_params__max_price_age_not_above_heartbeat__reverts(w):
    p = w.e.params[0]
    from dataclasses import replace
    reverts(w, OWNER, "set_market_params", 0, replace(p, max_price_age=HEARTBEAT), reason="params: price age")
    w.call(OWNER, "set_market_params", 0, replace(p, max_price_age=HEARTBEAT + 1))


# ---------------------------------------------------------------- fallback


@pytest.mark.parametrize("how", ["zero", "negative", "reverts", "incomplete", "above max", "below min"])
def test_price__primary_broken__comes_from_the_fallback(w, how):
    primary = w.feeds[feed_address(0)]
    w.now += 1
    w.feeds[FALLBACK].set_answer(answer(79_000), w.now)
    if how == "zero":
        primary.set_answer(0, w.now)
    elif how == "negative":
        primary.set_answer(-1, w.now)
    elif how == "reverts":
        primary.set_reverts(True)
    elif how == "incomplete":
        primary.answered_in_round = primary.round_id - 1
    elif how == "above max":
        primary.set_answer(answer(1_000_001), w.now)
    else:
        primary.set_answer(answer(999), w.now)
    assert P._round(w, 0, True) == (79_000 * WAD, w.now)
    assert w.view("oracle_round", 0) == (79_000 * WAD, w.now, MAX_AGE)


def test_price__primary_stale_past_two_heartbeats__fallback_with_a_later_round_prices(w):
    t0 = w.now
    w.now = t0 + MAX_AGE + 1
    with pytest.raises(Revert, match="stale price"):  # stale, but not yet down: no switch
        P._round(w, 0, True)
    w.feeds[FALLBACK].set_answer(answer(81_000), w.now)
    with pytest.raises(Revert, match="stale price"):  # fallback fresh, but the primary is not down yet
        P._round(w, 0, True)
    w.now = t0 + 2 * HEARTBEAT + 1
    assert P._round(w, 0, True) == (81_000 * WAD, t0 + MAX_AGE + 1)
    # a fallback whose round is not later than the primary's is not used
    w.feeds[FALLBACK].updated_at = t0
    with pytest.raises(Revert, match="stale price"):
        P._round(w, 0, True)


def test_price__primary_and_fallback_broken__bad_price_and_stale_fallback__stale(w):
    w.feeds[feed_address(0)].set_answer(0, w.now)
    w.feeds[FALLBACK].set_answer(0, w.now)
    with pytest.raises(Revert, match="bad price"):
        P._round(w, 0, False)
    w.feeds[FALLBACK].set_answer(answer(80_000), w.now)
    # its previous round (0) is unsound: nothing bounds this one (decision 80)
    with pytest.raises(Revert, match="bad price"):
        P._round(w, 0, False)
    w.feeds[FALLBACK].set_answer(answer(80_000), w.now)
    w.now += MAX_AGE + 1  # the fallback past its own max age
    with pytest.raises(Revert, match="stale price"):
        P._round(w, 0, True)
    assert P._round(w, 0, False)[0] == BTC  # views keep reading it
    # out of bounds is broken for the fallback too
    w.feeds[FALLBACK].set_answer(answer(1_000_001), w.now)
    assert w.view("oracle_round", 0)[0] == 0


def test_broken_primary__trading_liquidation_and_lp_settlement_go_on_with_the_fallback(w):
    """A feed that breaks does not freeze the protocol for the timelock's delay."""
    oid = w.call(TRADER, "request_order", 0, WAD, 8_000 * USDC, BUY)  # 10x long
    w.now += 1
    w.feeds[feed_address(0)].set_reverts(True)
    w.feeds[FALLBACK].set_answer(answer(80_000), w.now)
    w.call(KEEPER, "execute_order", oid)
    assert w.e.positions[(TRADER, 0)].entry_price == BTC
    w.now += 1
    w.feeds[FALLBACK].set_answer(answer(72_000), w.now)  # -10% in one round: over the fallback's jump bound
    reverts(w, KEEPER, "liquidate", TRADER, 0, [], reason="bad price")
    w.feeds[FALLBACK].set_answer(answer(76_000), w.now)  # -5% of its previous round (72,000: +5.6%)
    reverts(w, KEEPER, "liquidate", TRADER, 0, [], reason="bad price")
    w.feeds[FALLBACK].set_answer(answer(76_000), w.now)  # 80,000 -> 76,000 -> 72,200, 5% a round
    w.feeds[FALLBACK].set_answer(answer(72_200), w.now)  # -9.75% in all: liquidatable
    w.call(KEEPER, "liquidate", TRADER, 0, [])
    assert (TRADER, 0) not in w.e.positions
    # an LP deposit settles on the fallback's later round (the primary still reverts)
    w.mint(KEEPER, 1_000 * USDC)
    w.approve(KEEPER, w.vault_address, 2**256 - 1)
    w.call(KEEPER, "vault.requestDeposit", 1_000 * USDC, KEEPER, KEEPER)
    w.now += 1
    assert w.call(KEEPER, "vault.settle") == 0  # closes the epoch unpriced: no later round yet
    with pytest.raises(Revert, match="vault: no later round"):
        w.call(KEEPER, "vault.settle")
    for mid, f in ((0, FALLBACK), (1, feed_address(1))):
        w.feeds[f].set_answer(w.feeds[f].answer, w.now + 1)
    w.now += 1
    assert w.call(KEEPER, "vault.settle") == 1


# ---------------------------------------------------------------- sequencer


def test_sequencer__down_then_grace_then_up__fresh_verbs_wait_views_do_not(w):
    w.feeds[SEQUENCER] = sequencer_feed(1)
    reverts(w, OWNER, "set_sequencer_feed", SEQUENCER, P.MAX_SEQUENCER_GRACE + 1, reason="oracle: sequencer grace")
    reverts(w, OWNER, "set_sequencer_feed", P.ZERO, 60, reason="oracle: sequencer grace")
    reverts(w, TRADER, "set_sequencer_feed", SEQUENCER, 3600, reason="ownable: caller is not the owner")
    w.call(OWNER, "set_sequencer_feed", SEQUENCER, 3600)
    oid = w.call(TRADER, "request_order", 0, WAD, 8_000 * USDC, BUY)
    w.now += 1
    w.feeds[SEQUENCER].set_status(1, w.now)  # down
    restamp(w, 1)
    reverts(w, KEEPER, "execute_order", oid, reason="sequencer down")
    assert w.view("sequencer_status") == P.SEQUENCER_DOWN
    assert w.view("equity", TRADER, 0) == 0  # views read no sequencer
    w.feeds[SEQUENCER].set_status(0, w.now)  # back up at t
    up = w.now
    for dt in (0, 1, 3600):
        w.now = up + dt
        restamp(w)
        reverts(w, KEEPER, "execute_order", oid, reason="sequencer grace")
    w.now = up + 3601
    restamp(w)
    w.call(KEEPER, "execute_order", oid)
    # an invalid round (startedAt 0) counts as down
    w.feeds[SEQUENCER].started_at = 0
    with pytest.raises(Revert, match="sequencer down"):
        P._round(w, 0, True)
    w.feeds[SEQUENCER].started_at = w.now + 5  # from the future: grace
    with pytest.raises(Revert, match="sequencer grace"):
        P._round(w, 0, True)


def test_sequencer_down__vault_settle_waits(w):
    w.feeds[SEQUENCER] = sequencer_feed(1)
    w.call(OWNER, "set_sequencer_feed", SEQUENCER, 3600)
    w.mint(KEEPER, 1_000 * USDC)
    w.approve(KEEPER, w.vault_address, 2**256 - 1)
    w.call(KEEPER, "vault.requestDeposit", 1_000 * USDC, KEEPER, KEEPER)
    w.feeds[SEQUENCER].set_status(1, w.now)
    restamp(w, 1)
    reverts(w, KEEPER, "vault.settle", reason="vault: sequencer down")
    w.feeds[SEQUENCER].set_status(0, w.now)
    restamp(w, 10)
    reverts(w, KEEPER, "vault.settle", reason="vault: sequencer grace")
    restamp(w, 3600)
    assert w.call(KEEPER, "vault.settle") == 1


# ---------------------------------------------------------------- feed jump


def _new_feed(w, n, usd):
    f = address(0xF00D + n)
    w.add_feed(f, 8, answer(usd))
    return f


def test_set_market_params__feed_change__within_5_percent_of_the_old_answer(w):
    from dataclasses import replace
    p = w.e.params[0]
    far = _new_feed(w, 1, 84_001)
    reverts(w, OWNER, "set_market_params", 0, replace(p, feed=far), reason="params: feed jump")
    low = _new_feed(w, 2, 75_999)
    reverts(w, OWNER, "set_market_params", 0, replace(p, feed=low), reason="params: feed jump")
    broken = _new_feed(w, 3, 80_000)
    w.feeds[broken].set_answer(0, w.now)
    reverts(w, OWNER, "set_market_params", 0, replace(p, feed=broken), reason="bad price")
    edge = _new_feed(w, 4, 76_000)  # exactly -5%
    w.call(OWNER, "set_market_params", 0, replace(p, feed=edge))
    assert P._price(w, 0, False) == 76_000 * WAD


@pytest.mark.parametrize("old_state", ["broken", "stale past two heartbeats"])
def test_set_market_params__old_feed_down__any_sound_feed(w, old_state):
    from dataclasses import replace
    p = w.e.params[0]
    if old_state == "broken":
        w.feeds[feed_address(0)].set_reverts(True)
    else:
        w.now += 2 * HEARTBEAT + 1
    far = _new_feed(w, 1, 120_000)
    w.call(OWNER, "set_market_params", 0, replace(p, feed=far))
    assert P._price(w, 0, False) == 120_000 * WAD


def test_owner_feed_swap_attack__the_jump_bound_caps_the_take_at_5_percent_of_notional(w):
    """Issue 15: the owner, trading as TRADER, opens a long at the real
    price, points the market at a feed it controls, closes. Unbounded, a
    +20% answer paid 20% of notional; the jump bound refuses it and caps the
    switch at +5%. What the swap itself takes is then at most
    5% of notional less two trading fees (here 10 BTC at 80,000: 40,000 USDC
    less 2 x 5 bps, 39,980 USDC). Past that, the owner's feed is the
    market's feed: that the change goes through the timelock (branch gov)
    is what lets users see it coming and leave (docs/trust.md)."""
    from dataclasses import replace
    size = 10 * WAD
    notional = 800_000 * USDC
    open_long(w, TRADER, size, 100_000 * USDC)
    free0 = w.e.free.get(TRADER, 0)
    p = w.e.params[0]
    rigged = _new_feed(w, 1, 96_000)  # +20%
    reverts(w, OWNER, "set_market_params", 0, replace(p, feed=rigged), reason="params: feed jump")
    w.feeds[rigged].set_answer(answer(84_000), w.now)  # the most the bound allows
    w.call(OWNER, "set_market_params", 0, replace(p, feed=rigged))
    vault0 = w.token.balance_of(w.vault_address)
    oid = w.call(TRADER, "request_order", 0, -size, 0, 0)
    w.now += 1
    w.feeds[rigged].set_answer(answer(84_000), w.now)
    w.call(KEEPER, "execute_order", oid)
    gained = w.e.free[TRADER] - free0 - 100_000 * USDC  # the close pays margin back plus PnL less fees
    close_fee = 84_000 * 10 * 5 * USDC // 10_000  # 5 bps of the 840,000 closing notional
    exec_fee = w.e.params[0].execution_fee  # the close order's, escrowed from free collateral
    # the price move less the closing and execution fees, less a few seconds of funding (cents)
    assert 40_000 * USDC - close_fee - exec_fee - USDC < gained <= 40_000 * USDC - close_fee - exec_fee
    taken = vault0 - w.token.balance_of(w.vault_address)
    bound = notional * P.MAX_FEED_JUMP // WAD  # 40,000 USDC: 5% of the entry notional
    assert bound == 40_000 * USDC
    assert 0 < taken <= bound
