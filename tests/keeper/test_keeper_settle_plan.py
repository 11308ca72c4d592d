"""The keeper's LP settle job, in process on a model World (no chain): when
an epoch is due, what the keeper expects to earn (the model's settle on a
copy, which must equal what settling pays), what it leaves untouched, and
each reason to wait. The anvil test (test_keeper_operations.py, `lp_epoch`)
plays the same job against the contracts."""

import copy

from eth_account import Account

from bots import rpc as R
from bots.keeper import Keeper, Signer
from model import liquidity_vault as LV
from tests.model import worlds as W

USDC = W.USDC
WAD = W.WAD
FEE = 10 * USDC  # MAX_SETTLE_FEE_TOKENS
LP2 = W.address(0x2F)


def _keeper(w):
    k = Keeper(R.Rpc("http://127.0.0.1:9"), W.ENGINE, Signer(Account.create(), 31337))  # never called
    k.mirror.w = w
    return k


def _world():
    """The devnet's two markets, 5,000,000 USDC in the vault, a BTC long
    and an ETH short open (so the valuations depend on the engine's
    positions), the settle fee at its cap."""
    w = W.make_world()
    W.trade(w, W.TRADER, 0, WAD, 10_000 * USDC, 80_100 * WAD)
    W.trade(w, W.OTHER_TRADER, 1, -10 * WAD, 10_000 * USDC, 2_990 * WAD)
    W.set_price(w, 0, 81_000 * WAD, now=w.now)
    w.call(W.OWNER, "vault.set_settle_fee", FEE)
    return w


def _settled_by(w, who):
    before = w.token.balance_of(who)
    w.call(who, "vault.settle")
    return w.token.balance_of(who) - before


def test_settle_plan__deposit__waits_for_a_later_round_then_earns_exactly_what_settling_pays():
    w = _world()
    w.mint(LP2, 100_000 * USDC)
    w.approve(LP2, W.VAULT, W.MAX_UINT)
    w.call(LP2, "vault.requestDeposit", 100_000 * USDC, LP2, LP2)
    k = _keeper(w)
    assert k._settle_due(w) is None  # every round is from the request's second or before
    assert k._lp_waiting == (2, "vault: no later round") and k.stats["settle_waits"] == 1  # epoch 1 seeded the vault
    assert k._settle_due(w) is None and k.stats["settle_waits"] == 1  # counted once per epoch and reason

    W.advance(w, 1)  # a later round on every feed
    engine, vault, token = copy.deepcopy(w.e), copy.deepcopy(w.v), copy.deepcopy(w.token)
    a = k._settle_due(w)
    assert (a.kind, a.key, a.to, a.always, a.describe()) == ("settle", "settle", W.VAULT, False, "settle LP epoch 2")
    assert (w.e, w.v, w.token) == (engine, vault, token)  # planned on a copy: the mirror is as it was
    assert a.reward == FEE == _settled_by(w, k.me)  # the fee, from the epoch's deposit
    assert LV.get_epoch(w, 2).settled_at == w.now and k._settle_due(w) is None  # nothing left


def test_settle_plan__redemption_only__earns_the_fee_from_its_assets_and_a_one_unit_epoch_earns_one_unit():
    w = _world()
    shares = w.v.balances[W.LP] // 10
    w.call(W.LP, "vault.requestRedeem", shares, W.LP, W.LP)
    W.advance(w, 1)
    k = _keeper(w)
    a = k._settle_due(w)
    assert a.reward == FEE == _settled_by(w, k.me)

    w.call(W.LP, "vault.requestRedeem", 1_000, W.LP, W.LP)  # 1,000 share units: about one token unit
    W.advance(w, 1)
    a = k._settle_due(w)
    assert a.reward == _settled_by(w, k.me) < FEE  # never more than the epoch moves


def test_settle_plan__closed_epoch__waits_while_a_feed_is_stale_or_broken():
    w = _world()
    w.call(W.LP, "vault.requestRedeem", 1_000_000, W.LP, W.LP)
    w.call(W.KEEPER, "vault.settle")  # someone closes it before its rounds: priced nothing
    assert (w.v.closing, w.v.epoch) == (2, 3)
    k = _keeper(w)
    assert k._settle_due(w) is None and k._lp_waiting == (2, "vault: no later round")
    w.now += w.e.params[0].max_price_age + 1  # no new rounds: every feed stale
    assert k._settle_due(w) is None and k._lp_waiting == (2, "vault: stale price")
    W.advance(w, 1)
    w.set_answer(W.feed_address(1), 0)  # ETH's feed answers 0
    assert k._settle_due(w) is None and k._lp_waiting == (2, "vault: bad price")
    assert k.stats["settle_waits"] == 3 and k.metrics.actions.labels("settle", "wait")._value.get() == 3
    W.set_price(w, 1, 3_000 * WAD, now=w.now)
    a = k._settle_due(w)
    assert a.reward == _settled_by(w, k.me) > 0 and k._lp_waiting is None


def test_settle_plan__a_winner_past_its_cap__waits_then_settles_once_it_closes():
    """Decision 94: while a market side's gain is past its side's reserve
    (the BTC long from 80,100 at 130,000: +49,900 against a 40,050 cap) no
    epoch prices; the model's settle raises `vault: past cap`, which the
    keeper counts as a wait and does not send. Once the winner closes (paid
    its cap) the epoch is due and earns what settling pays."""
    w = _world()
    W.set_price(w, 0, 130_000 * WAD, now=w.now)
    w.call(W.LP, "vault.requestRedeem", 1_000_000, W.LP, W.LP)
    W.advance(w, 1)
    k = _keeper(w)
    assert k._settle_due(w) is None and k._lp_waiting == (2, "vault: past cap")
    assert k.stats["settle_waits"] == 1 and LV.get_epoch(w, 2).settled_at == 0
    W.close(w, W.TRADER, 0)
    W.advance(w, 1)
    a = k._settle_due(w)
    assert a is not None and a.reward == _settled_by(w, k.me) > 0 and k._lp_waiting is None
