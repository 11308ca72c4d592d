"""The vault's epochs (ERC-7540) in the vault's unit tests: requests,
settlement after a later round on every feed, claims, each on chain and in
the model (the twin), and the comparison of what Twin.assert_same does not
read: every controller's pending and claimable requests, the epochs, the
escrow."""

from tests.conftest import lp_deposit  # noqa: F401  (re-exported: the fixtures' helper)
from tests.unit.perp_engine.helpers import expect_ok

OFFSET = 10**3


def _a(x):
    return getattr(x, "address", x)


def later_rounds(twin, sender):
    """A new round at every feed's current answer, in the next block."""
    for mid in range(len(twin.p.feeds)):
        twin.restamp(mid, sender)


def settle(twin, settler):
    """settle on both; returns the number of epochs priced (the model's)."""
    n = len(twin.w.events)
    expect_ok(twin, settler, "vault.settle")
    return sum(1 for name, _ in twin.w.events[n:] if name == "EpochSettled")


def deposit(twin, who, assets, settler=None):
    """request, later rounds, settle, claim everything: the shares got."""
    v = twin.p.vault
    before = v.balanceOf(who)
    expect_ok(twin, who, "vault.requestDeposit", assets, who, who)
    later_rounds(twin, who)
    settle(twin, settler or who)
    expect_ok(twin, who, "vault.deposit", v.maxDeposit(who), who)
    return v.balanceOf(who) - before


def redeem(twin, who, shares, settler=None):
    """request, later rounds, settle, claim what free cash paid and the
    shares it did not: the assets got."""
    v, tok = twin.p.vault, twin.p.token
    before = tok.balanceOf(who)
    expect_ok(twin, who, "vault.requestRedeem", shares, who, who)
    later_rounds(twin, who)
    settle(twin, settler or who)
    if v.maxRedeem(who):
        expect_ok(twin, who, "vault.redeem", v.maxRedeem(who), who, who)
    claim_back(twin, who)
    return tok.balanceOf(who) - before


def claim_back(twin, who):
    """The shares of `who`'s redemptions free cash did not pay, back to it
    (claimCancelRedeemRequest), when there are any."""
    if twin.p.vault.claimableCancelRedeemRequest(0, who):
        expect_ok(twin, who, "vault.claimCancelRedeemRequest", 0, who, who)


def vault_state(twin, accounts):
    """(chain, model) of every per-controller and per-epoch value."""
    v, w = twin.p.vault, twin.w
    from model import liquidity_vault as LV
    chain_s, model_s = {}, {}
    chain_s["epochs"] = (v.epoch(), v.closing(), v.settle_fee())
    model_s["epochs"] = (w.v.epoch, w.v.closing, w.v.settle_fee)
    for e in range(1, max(v.epoch(), w.v.epoch) + 1):
        chain_s[("epoch", e)] = tuple(int(x) for x in v.get_epoch(e))
        ep = LV.get_epoch(w, e)
        model_s[("epoch", e)] = (ep.deposit_assets, ep.redeem_shares, ep.last_request, ep.settled_at,
                                 ep.deposit_shares, ep.redeem_filled, ep.redeem_assets)
    chain_s["escrow"] = twin.p.token.balanceOf(v.ESCROW())
    model_s["escrow"] = w.token.balance_of(LV.escrow(w))
    chain_s["vault shares"] = v.balanceOf(v.address)
    model_s["vault shares"] = w.v.balances.get(w.vault_address, 0)
    for a in map(_a, accounts):
        chain_s[a] = (v.pendingDepositRequest(0, a), v.claimableDepositRequest(0, a), v.maxMint(a),
                      v.pendingRedeemRequest(0, a), v.claimableRedeemRequest(0, a), v.maxWithdraw(a),
                      v.claimableCancelRedeemRequest(0, a), v.balanceOf(a))
        model_s[a] = (LV.pending_deposit(w, a), LV.claimable_deposit(w, a), LV.claimable_deposit_shares(w, a),
                      LV.pending_redeem(w, a), LV.claimable_redeem(w, a), LV.claimable_redeem_assets(w, a),
                      LV.claimable_returned(w, a), w.v.balances.get(a, 0))
    return chain_s, model_s


def assert_vault_same(twin, accounts):
    c, m = vault_state(twin, accounts)
    diffs = [k for k in c if c[k] != m.get(k)]
    assert not diffs, "vault: model and chain differ:\n" + "\n".join(f"  {k}: chain={c[k]!r} model={m.get(k)!r}"
                                                                    for k in diffs)
    twin.assert_same()


def redeem_everything(twin, lp, settler=None):
    """The LP asks for all its shares back: request, later rounds, settle,
    claim what free cash paid and the shares it did not (claimCancelRedeemRequest). Returns (shares requested, the free cash before, the assets
    claimed)."""
    v, tok = twin.p.vault, twin.p.token
    shares, free = v.balanceOf(lp), v.free_cash()
    expect_ok(twin, lp, "vault.requestRedeem", shares, lp, lp)
    later_rounds(twin, settler or lp)
    settle(twin, settler or lp)
    wallet = tok.balanceOf(lp)
    if v.maxRedeem(lp):
        expect_ok(twin, lp, "vault.redeem", v.maxRedeem(lp), lp, lp)
    claim_back(twin, lp)
    return shares, free, tok.balanceOf(lp) - wallet
