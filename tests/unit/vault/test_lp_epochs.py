"""Issue 12: LP deposits and redemptions at prices nobody knew. Both attacks
of the issue, with its numbers, replayed against the real contracts and the
model side by side, now failing for the attacker; the settlement fee and
its cap. Devnet parameters: BTC at 80,000, ETH at 3,000, max_price_age 3,600 s,
funding off in every test (values do not move between a read and the next
block). docs/lp-epochs.md states the rules each test plays."""

from tests.unit.perp_exits.helpers import BTC, USDC, WAD, no_funding, ok, open_position, price, reverts
from tests.unit.vault.lp import OFFSET, assert_vault_same, later_rounds

ETH = 1


def _long_100_btc(twin, owner, trader):
    """Traders net long 100 BTC at 80,000 (8,000,000 of notional, a 4,000,000
    reserve), funding off in both markets."""
    no_funding(twin, owner, BTC)
    no_funding(twin, owner, ETH)
    open_position(twin, trader, 100 * WAD, 200_000 * USDC, deposit=1_000_000 * USDC)


def _rounds_later_than_the_request(twin, epoch_id):
    """Every feed's latest round is later than the epoch's last request (the
    invariant of issue 12), read on chain."""
    last = twin.p.vault.get_epoch(epoch_id)[2]
    return all(f.latestRoundData()[3] > last for f in twin.p.feeds)


def _settled(twin):
    """The model's last EpochSettled (Twin.act checks the chain agreed)."""
    return [f for n, f in twin.w.events if n == "EpochSettled"][-1]


def test_sandwich__deposit_before_a_known_minus_half_percent_update__ends_with_less(
        twin, owner, trader, other_trader, keeper):
    """The issue's sandwich: traders net long 100 BTC, a 2,000,000 USDC
    deposit right before a -0.5% update (80,000 -> 79,600: the longs lose
    40,000, the vault's) and a redemption right after earned 19,810 USDC
    from the other LPs. Now the deposit is priced after the update, at the
    entry valuation that counts the longs' 40,000 loss, and the redemption
    at the exit valuation that does not: the knowing LP ends with less."""
    v, tok = twin.p.vault, twin.p.token
    attacker = other_trader
    _long_100_btc(twin, owner, trader)
    twin.fund(attacker, 2_000_000 * USDC)
    start = tok.balanceOf(attacker)
    ok(twin, attacker, "vault.requestDeposit", 2_000_000 * USDC, attacker, attacker)
    epoch = v.epoch()
    ok(twin, keeper, "vault.settle")  # before the update: the epoch closes, unpriced
    assert v.closing() == epoch and v.epoch() == epoch + 1 and v.get_epoch(epoch)[3] == 0
    reverts(twin, keeper, "vault.settle", reason="vault: no later round")  # too early: waits, changes nothing
    price(twin, owner, 79_600)  # the update the attacker knew
    twin.restamp(ETH, keeper)
    cash, supply = v.cash(), v.totalSupply()
    assert twin.p.engine.traders_claim() == -40_000 * USDC and v.entry_assets() == cash + 40_000 * USDC
    ok(twin, keeper, "vault.settle")
    assert _rounds_later_than_the_request(twin, epoch)
    s = _settled(twin)
    assert s["entry_assets"] == cash + 40_000 * USDC
    shares = 2_000_000 * USDC * (supply + OFFSET) // (cash + 40_000 * USDC + 1)
    assert s["deposit_shares"] == shares
    ok(twin, attacker, "vault.deposit", 2_000_000 * USDC, attacker)
    assert v.balanceOf(attacker) == shares
    # right after: the redemption waits for the next round, priced at the exit valuation
    ok(twin, attacker, "vault.requestRedeem", shares, attacker, attacker)
    later_rounds(twin, keeper)
    exit_assets, supply = v.totalAssets(), v.totalSupply()
    assert exit_assets == v.cash()  # the longs' loss is no asset until collected
    ok(twin, keeper, "vault.settle")
    ok(twin, attacker, "vault.redeem", v.maxRedeem(attacker), attacker, attacker)
    end = tok.balanceOf(attacker)
    assert end - start == shares * (exit_assets + 1) // (supply + OFFSET) - 2_000_000 * USDC
    assert end < start, f"the knowing LP made {end - start}"
    # about 2,000,000 x 40,000 / 7,040,000 (the vault after the deposit) left to the LPs who stayed
    assert start - end > 11_000 * USDC
    assert_vault_same(twin, [attacker, trader])


def test_sandwich__redeem_before_a_known_update_against_the_vault__pays_the_update(
        twin, owner, trader, lp, keeper):
    """The same works for exits: redeem before an update that lowers the
    valuation (+0.5%: the longs gain 40,000). The redemption is priced after
    it, at the exit valuation that counts the gain: the leaving LP bears its
    share of the update, as it would had it stayed."""
    v = twin.p.vault
    _long_100_btc(twin, owner, trader)
    shares = v.balanceOf(lp) // 10
    ok(twin, lp, "vault.requestRedeem", shares, lp, lp)
    before = v.convertToAssets(shares)  # what an instant exit would have paid
    price(twin, owner, 80_400)
    twin.restamp(ETH, keeper)
    assert twin.p.engine.traders_gain() == 40_000 * USDC
    exit_assets, supply = v.totalAssets(), v.totalSupply()
    ok(twin, keeper, "vault.settle")
    paid = shares * (exit_assets + 1) // (supply + OFFSET)
    assert v.maxWithdraw(lp) == paid < before
    assert before - paid >= 40_000 * USDC * shares // supply - 1
    assert_vault_same(twin, [lp, trader])


def test_stale_feed__a_deposit_waits_then_settles_at_the_fresh_valuation(twin, owner, trader, other_trader, keeper):
    """The issue's stale feed: while the feed was stale every trading verb
    reverted but the vault took deposits at the stale valuation: 1,000,000
    USDC deposited during a 2-hour outage followed by a -5% move redeemed
    1,199,521. Now the request is taken, settlement waits ("vault: stale
    price") until the feed is fresh, and the deposit is priced after the
    move, at the entry valuation that counts the longs' 400,000 loss."""
    v, tok = twin.p.vault, twin.p.token
    depositor = other_trader
    _long_100_btc(twin, owner, trader)
    start = tok.balanceOf(depositor)
    twin.advance(2 * 3600)  # two hours without a round: both feeds stale
    ok(twin, depositor, "vault.requestDeposit", 1_000_000 * USDC, depositor, depositor)
    epoch = v.epoch()
    reverts(twin, keeper, "vault.settle", reason="vault: stale price")
    assert v.pendingDepositRequest(0, depositor) == 1_000_000 * USDC and v.closing() == 0
    price(twin, owner, 76_000)  # the feed is back, 5% lower
    reverts(twin, keeper, "vault.settle", reason="vault: stale price")  # ETH's feed is still stale: wait
    twin.restamp(ETH, keeper)
    cash, supply = v.cash(), v.totalSupply()
    assert v.entry_assets() == cash + 400_000 * USDC
    ok(twin, keeper, "vault.settle")
    assert _rounds_later_than_the_request(twin, epoch)
    shares = 1_000_000 * USDC * (supply + OFFSET) // (cash + 400_000 * USDC + 1)
    assert v.maxMint(depositor) == shares
    ok(twin, depositor, "vault.deposit", 1_000_000 * USDC, depositor)
    ok(twin, depositor, "vault.requestRedeem", shares, depositor, depositor)
    later_rounds(twin, keeper)
    ok(twin, keeper, "vault.settle")
    ok(twin, depositor, "vault.redeem", v.maxRedeem(depositor), depositor, depositor)
    assert tok.balanceOf(depositor) < start  # not 1,199,521: less than the 1,000,000 put in
    assert_vault_same(twin, [depositor, trader])


def test_settle_fee__paid_to_the_settler_from_the_epoch_and_capped(twin, owner, trader, other_trader, keeper, stranger):
    """The settlement fee: owner-set, at most MAX_SETTLE_FEE_TOKENS (10)
    whole tokens, paid to whoever settles, out of the epoch's deposits
    first, then its redemptions; never more than the epoch moves."""
    v, tok = twin.p.vault, twin.p.token
    assert v.MAX_SETTLE_FEE() == 10 * USDC
    reverts(twin, stranger, "vault.set_settle_fee", USDC, reason="ownable: caller is not the owner")
    reverts(twin, owner, "vault.set_settle_fee", 10 * USDC + 1, reason="vault: fee above cap")
    ok(twin, owner, "vault.set_settle_fee", 2 * USDC)
    # a 3-USDC deposit: the fee comes out of it
    ok(twin, trader, "vault.requestDeposit", 3 * USDC, trader, trader)
    later_rounds(twin, keeper)
    cash, supply, entry = v.cash(), v.totalSupply(), v.entry_assets()
    wallet = tok.balanceOf(keeper)
    ok(twin, keeper, "vault.settle")
    assert tok.balanceOf(keeper) - wallet == 2 * USDC
    assert v.cash() == cash + 1 * USDC
    assert v.maxMint(trader) == 1 * USDC * (supply + OFFSET) // (entry + 1)
    # an epoch with only a redemption pays the fee out of it
    ok(twin, trader, "vault.deposit", 3 * USDC, trader)
    ok(twin, other_trader, "vault.requestDeposit", 500 * USDC, other_trader, other_trader)
    later_rounds(twin, keeper)
    ok(twin, keeper, "vault.settle")
    ok(twin, other_trader, "vault.deposit", 500 * USDC, other_trader)
    shares = v.balanceOf(other_trader)
    ok(twin, other_trader, "vault.requestRedeem", shares, other_trader, other_trader)
    later_rounds(twin, keeper)
    gross = shares * (v.totalAssets() + 1) // (v.totalSupply() + OFFSET)
    wallet = tok.balanceOf(stranger)
    ok(twin, stranger, "vault.settle")  # anyone settles
    assert tok.balanceOf(stranger) - wallet == 2 * USDC
    assert v.maxWithdraw(other_trader) == gross - 2 * USDC
    assert_vault_same(twin, [trader, other_trader, keeper, stranger])
