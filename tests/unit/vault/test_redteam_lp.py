"""Red team of the LP side and the solvency mechanism (issues 12 and 13),
played with numbers against the real contracts in process (revm; see
tests/unit/vault/redteam_lab.py). Each test is an attack. Where the
mechanism holds it asserts the bound; where the attack works the test
asserts the safe behaviour and is a strict xfail naming the finding
(docs/redteam-lp.md has each finding, its numbers and the fix).

Devnet parameters: BTC at 80,000, ETH at 3,000, trading fee 5 bps (70% to
the vault), imf 1%, max_price_age 3,600 s, funding off (values do not move
between a read and the next block). One LP seeds 1,000,000 USDC."""

import pytest

from tests.unit.vault.in_process import _narrow_twin, _roles_first  # noqa: F401 (fixtures)
from tests.unit.vault.redteam_lab import BTC, ETH, OFFSET, USDC, WAD, Lab, restoring

SEED = 1_000_000 * USDC


@pytest.fixture(scope="module")
def base():
    """The protocol deployed once for the module, with 1,000,000 USDC of LP
    liquidity in through an epoch."""
    lab = Lab()
    assert lab.lp_in("lp", SEED) == SEED * OFFSET
    return lab


@pytest.fixture
def lab(base):
    yield from restoring(base)


def share_value(lab, who):
    """What `who`'s shares are worth at the exit valuation (convertToAssets)."""
    return lab.v("convertToAssets(uint256)", lab.shares(who))


def keeper_step(lab):
    """One block of the keeper of decision 72: settle only when the epoch a
    settle would price has, on every feed, a fresh round later than its last
    request (never a close alone). Returns whether it settled."""
    closing = lab.v("closing()")
    e = closing or lab.v("epoch()")
    dep, red, last = lab.epoch(e)[:3]
    if not closing and dep == 0 and red == 0:
        return False
    for mid in range(len(lab.prices)):
        updated = lab.view(f"feed{mid}", "latestRoundData()",
                           out=("uint80", "int256", "uint256", "uint256", "uint80"))[3]
        if updated <= last:
            return False
    lab.settle("keeper")
    return True


# ---------------------------------------------------------------- finding 1: the settler picks the round

def _trader_long_in_profit(lab):
    """A trader long 10 BTC from 80,000, the price at 88,000: the trader wins
    80,000 (under its 400,000 cap), so entry and exit valuations agree and
    every 1% of BTC moves the vault by 8,800."""
    assert lab.open("trader", BTC, 10 * WAD, 100_000 * USDC)
    lab.round({BTC: 88_000})
    val = lab.valuation()
    assert val["gain"] == val["claim"] == 80_000 * USDC and val["entry"] == val["exit"]


def _round_trip(lab, attacker, plan, dust):
    """The attacker deposits 1,000,000 and redeems everything; the feed
    publishes `plan` (BTC prices, one round each, 60 s apart), which the
    attacker knows one round ahead. A keeper settles by decision 72's rule
    every block. With `dust`, whenever the round just published is a worse
    price for the attacker's pending request than the next one, the attacker
    requests one more unit in the same second as the round, so that the
    round is not later than the epoch's last request and the keeper waits.
    Returns (the BTC price each leg was priced at, the attacker's P&L)."""
    lab.tx("owner", "vault", "set_settle_fee(uint256)", 10 * USDC)
    lab.fund(attacker, 2_000_000 * USDC)
    start = lab.bal(attacker)
    lab.request_deposit(attacker, 1_000_000 * USDC)
    leg, priced = "deposit", []
    for i, p in enumerate(plan):
        lab.round({BTC: p}, dt=60)
        nxt = plan[i + 1] if i + 1 < len(plan) else p
        # the vault is worth more after a BTC drop (traders are long): a
        # deposit wants the price before a drop, a redemption after it
        wait = (nxt > p) if leg == "deposit" else (nxt < p)
        if dust and wait:
            # in the round's own second (a transaction later in its block)
            if leg == "deposit":
                lab.request_deposit(attacker, 1, dt=0)
            else:
                lab.request_redeem(attacker, 1, dt=0)
        if keeper_step(lab):
            priced.append(p)
            lab.claim_all(attacker)
            if leg == "deposit":
                leg = "redeem"
                lab.request_redeem(attacker, lab.shares(attacker))
            else:
                break
    assert len(priced) == 2, priced
    lab.claim_all(attacker)
    return priced, lab.bal(attacker) - start


PLAN = [88_000, 88_880, 88_000, 88_880, 88_000, 88_880, 88_000]


def test_settle_timing__prompt_keeper__a_round_trip_that_ends_where_it_began_earns_nothing(lab):
    """Without games: a keeper prices each request at the first fresh round
    after it; BTC ends where it began and so does the attacker, less the two
    settle fees (10 USDC each, from its own flows) and rounding."""
    _trader_long_in_profit(lab)
    priced, pnl = _round_trip(lab, "attacker", PLAN, dust=False)
    assert priced == [88_000, 88_880]  # deposit at the first round, redemption at the next one
    assert pnl <= 0, pnl


def test_settle_timing__dust_in_each_rounds_second__the_requester_picks_the_round(lab):
    """The attacker knows the next round. Each round after which BTC will
    move its way it lets be (the keeper prices), each other it cancels by a
    one-unit request stamped in the round's own second. It buys at 88,880
    (the vault at its low) and sells at 88,000 (its high): with BTC back
    where it started it took about 4,600 USDC from the LP who stayed
    (+4,583.74). Fixed (decisions 89, 90): the dust request prices the
    epoch at the round it wanted to skip and joins the next epoch; the
    attacker ends at -10.00 USDC (the settle fee). Safe behaviour: the round
    trip earns nothing, as with a prompt keeper."""
    _trader_long_in_profit(lab)
    lp_before = share_value(lab, "lp")
    priced, pnl = _round_trip(lab, "attacker", PLAN, dust=True)
    assert priced == [88_880, 88_000], priced
    lp_after = share_value(lab, "lp")
    # the numbers of the attack, recorded while it works
    print(f"attacker P&L {pnl / USDC:,.2f} USDC; the staying LP's shares {lp_before / USDC:,.2f} -> {lp_after / USDC:,.2f}")
    assert pnl <= 0, f"the attacker earned {pnl / USDC:,.2f} USDC"


def test_settle_timing__default_fee_zero__the_requester_is_the_only_settler_and_picks_the_round(lab):
    """The default: settle_fee 0, so the keeper never settles (decision 72)
    and the LP settles its own epoch. Knowing the next round, it settles
    only at a round followed by a move its way: no dust needed (+4,603.76
    before the fix). Fixed (decision 89): whenever it settles, the epoch is
    priced at the first round after its last request; it ends at -0.00."""
    _trader_long_in_profit(lab)
    attacker = "attacker"
    lab.fund(attacker, 2_000_000 * USDC)
    start = lab.bal(attacker)
    lab.request_deposit(attacker, 1_000_000 * USDC)
    leg, priced = "deposit", []
    for i, p in enumerate(PLAN):
        lab.round({BTC: p}, dt=60)
        nxt = PLAN[i + 1] if i + 1 < len(PLAN) else p
        if (nxt < p) if leg == "deposit" else (nxt > p):
            assert lab.settle(attacker) == 1
            priced.append(p)
            lab.claim_all(attacker)
            if leg == "redeem":
                break
            leg = "redeem"
            lab.request_redeem(attacker, lab.shares(attacker))
    assert priced == [88_880, 88_000]
    pnl = lab.bal(attacker) - start
    print(f"attacker P&L {pnl / USDC:,.2f} USDC")
    assert pnl <= 0, f"the attacker earned {pnl / USDC:,.2f} USDC"


# ---------------------------------------------------------------- finding 2: a stranger's dust blocks a controller

def test_dust_request_for_a_victim_controller__blocks_the_victims_redemption(lab):
    """The victim LP wants out. Each of 5 rounds, the attacker prices the
    closed epoch, tries to request one share unit (its own) for the victim
    as controller, and closes the epoch before the next round: were the
    request taken, the victim's request would wait in a closed epoch and its
    own requestRedeem would revert 'vault: request pending' (5 of 5 rounds
    before the fix, for 5 share units). Now a request may name a controller
    only with its consent (msg.sender, the owner, or the controller's
    operator: decision 91): the attacker's request reverts 'vault: not
    controller' with nothing changed, and the victim's redemption is taken."""
    lab.lp_in("victim", 100_000 * USDC)
    lab.lp_in("attacker", 1 * USDC)
    victim_shares = lab.shares("victim")
    attacker_shares = lab.shares("attacker")
    v = lab.a["victim"]
    blocked = refused = 0
    for _ in range(5):
        if lab.v("closing()"):
            lab.round(dt=60)
            lab.settle("attacker")  # prices the closed epoch
        epoch = lab.v("epoch()")
        reason = lab.reason("attacker", "vault", "requestRedeem(uint256,address,address)", 1, v, lab.a["attacker"])
        assert reason == "vault: not controller"
        refused += 1
        # nothing changed: the attacker keeps its share unit, the victim has no request
        assert lab.shares("attacker") == attacker_shares and lab.v("epoch()") == epoch
        assert lab.v("pendingRedeemRequest(uint256,address)", 0, v) == 0 and lab.epoch(epoch)[:3] == (0, 0, 0)
        # a deposit request naming the victim is refused the same way
        lab.fund("attacker", 1)
        assert lab.reason("attacker", "vault", "requestDeposit(uint256,address,address)", 1, v,
                          lab.a["attacker"]) == "vault: not controller"
        assert lab.v("pendingDepositRequest(uint256,address)", 0, v) == 0
        try:
            lab.request_redeem("victim", 1)  # the victim's own request, one unit a round
        except Exception as exc:  # noqa: BLE001 (the reason is checked)
            assert getattr(exc, "reason", "") == "vault: request pending"
            blocked += 1
        assert lab.settle("attacker") == 0  # closes the victim's epoch before its round
    print(f"the victim's redemption refused in {blocked} of 5 rounds; the attacker's request refused {refused} of 5")
    assert blocked == 0 and refused == 5
    lab.round(dt=60)
    lab.settle("keeper")
    # an operator the victim approved may name it as controller (ERC-7540 routers)
    lab.tx("victim", "vault", "setOperator(address,bool)", lab.a["stranger"], True)
    lab.tx("stranger", "vault", "requestRedeem(uint256,address,address)", 1, v, v)
    lab.request_redeem("victim", lab.shares("victim"))
    lab.round(dt=60)
    lab.settle("keeper")
    # every share the victim had is out: 5 units, 1 by its operator, the rest
    assert lab.shares("victim") == 0 and lab.v("pendingRedeemRequest(uint256,address)", 0, v) == 0
    assert lab.v("claimableRedeemRequest(uint256,address)", 0, v) == victim_shares


# ---------------------------------------------------------------- finding 3: capacity squatting

BORROW_10_PCT = 10**17 // (365 * 86400)  # 10% of notional a year, per second (Sepolia's rate)
DAY = 86_400


def _squat(lab):
    """Two attacker accounts, 12.5 BTC long and 12.5 BTC short at 80,000:
    2,000,000 of notional, a 1,000,000 reserve against 1,000,700 of cash,
    net exposure zero, funding zero at a balanced skew. Returns the
    attackers' money before (what lab.open deposits included)."""
    start = sum(lab.bal(a) + lab.free(a) for a in ("attacker", "attacker2")) + 2 * (16_500 * USDC + 10 * USDC)
    assert lab.open("attacker", BTC, 125 * WAD // 10, 11_000 * USDC)
    assert lab.open("attacker2", BTC, -125 * WAD // 10, 11_000 * USDC)
    val = lab.valuation()
    assert val["reserve"] == 1_000_000 * USDC and val["free"] == val["cash"] - val["reserve"] == 700 * USDC
    return start


def test_capacity_squat__hedged_long_and_short__locks_lp_redemptions_without_a_fee(lab):
    """Finding 3 as found: with no borrowing fee (the devnet's default) the
    squat costs only its trading fees, whatever time it holds. An LP asking
    for 10% of the vault is paid 700.00 and gets 90% of its shares back; a
    trader's open is refused `vault: capacity`. The bound is the fee's
    (the next test): this one pins the state the fee prices."""
    _squat(lab)
    assert not lab.open("trader", ETH, 10 * WAD, 1_000 * USDC)
    wanted = lab.shares("lp") // 10
    got = lab.lp_out("lp", wanted)
    print(f"no fee: the LP asked for 10%, was paid {got / USDC:,.2f}")
    assert got == 700 * USDC
    lab.round(dt=30 * DAY)
    assert lab.e("funding_owed(address,uint256)", lab.a["attacker"], BTC, out=("int256",)) == 0


def test_capacity_squat__borrowing_fee__the_squat_pays_the_lps_and_ends_in_liquidation(lab):
    """Finding 3 fixed by decision 96. At 10% a year on BTC, each leg of the
    squat pays 12.5 * 80,000 * 10% / 365 = 273.97 USDC a day to the vault,
    547.95 for 1,000,000 of locked capacity, whatever the price does (both
    sides pay). Holding costs what it denies, and it cannot hold for ever:
    the fee eats each leg's margin until it is liquidatable (equity below
    0.5% of 1,000,000: after about (11,000 - 5,000) / 273.97 = 21.9 days at
    100x-style margins), the keeper liquidates both, and the capacity is
    free: the LP's 10% is then paid in full."""
    lab.tx("owner", "engine", "set_borrow_rate(uint256,uint256)", BTC, BORROW_10_PCT)
    lp_before = share_value(lab, "lp")
    start = _squat(lab)
    lab.round(dt=DAY)
    per_leg = [lab.e("funding_owed(address,uint256)", lab.a[a], BTC, out=("int256",)) for a in ("attacker", "attacker2")]
    print(f"borrowing fee after one day: {per_leg[0] / USDC:,.2f} + {per_leg[1] / USDC:,.2f} USDC")
    # 12.5 BTC * 80,000 * rate a second (3,171 units), for the day and the
    # few seconds since each leg's execution (the first leg a few more)
    per_second = -(-125 * 80_000 * BORROW_10_PCT * USDC // (10 * WAD))
    exact = 125 * 80_000 * BORROW_10_PCT * DAY * USDC // (10 * WAD)
    assert all(exact <= o <= exact + 10 * per_second for o in per_leg) and min(per_leg) >= 273_97 * USDC // 100
    # 22 days in: both legs are past maintenance and a keeper closes them
    lab.round(dt=21 * DAY)
    for a in ("attacker", "attacker2"):
        assert lab.e("is_liquidatable(address,uint256)", lab.a[a], BTC, out=("bool",))
        lab.tx("keeper", "engine", "liquidate(address,uint256,address[])", lab.a[a], BTC, [])
    assert lab.valuation()["reserve"] == 0
    wanted = lab.shares("lp") // 10
    worth = lab.v("convertToAssets(uint256)", wanted)
    got = lab.lp_out("lp", wanted)
    for a in ("attacker", "attacker2"):
        lab.withdraw_all(a)
    end = sum(lab.bal(a) for a in ("attacker", "attacker2"))
    lp_after = share_value(lab, "lp") + got
    print(f"after 22 days: attacker P&L {(end - start) / USDC:,.2f} USDC; LP {lp_before / USDC:,.2f} -> "
          f"{lp_after / USDC:,.2f} (its 10% paid {got / USDC:,.2f} of {worth / USDC:,.2f})")
    assert got == worth
    # the squat cost at least 22 days of fee on 2,000,000 of notional, and the LPs got it
    fee_22 = 2 * 22 * exact
    assert start - end >= fee_22 and lp_after - lp_before >= fee_22


# ---------------------------------------------------------------- finding 4: the reserve as a valuation lever

def _winner_past_its_cap(lab):
    """max_profit at its floor, 25% (owner); a trader long 10 BTC from
    80,000, BTC at 104,000 (+30%): the trader's 240,000 gain is past its
    200,000 cap, so traders_claim (240,000) exceeds traders_reserve
    (200,000) and both valuations count the reserve."""
    lab.tx("owner", "engine", "set_max_profit(uint256)", 25 * 10**16)
    assert lab.open("trader", BTC, 10 * WAD, 100_000 * USDC)
    lab.round({BTC: 104_000})
    val = lab.valuation()
    assert val["claim"] == 240_000 * USDC and val["reserve"] == 200_000 * USDC
    assert val["entry"] == val["exit"] == val["cash"] - 200_000 * USDC
    return val


def _hedge(lab, btc_tenths):
    """A long and a short of btc_tenths/10 BTC at the current price on two
    attacker accounts: zero PnL, zero net exposure; each adds 25% of its
    notional to the reserve."""
    assert lab.open("attacker", BTC, btc_tenths * WAD // 10, 2_000 * USDC)
    assert lab.open("attacker2", BTC, -btc_tenths * WAD // 10, 2_000 * USDC)


def _attackers_in(lab):
    """The staying LP's share value and the two attacker accounts' money
    before the attack, the attacker funded with the 1,000,000 it deposits."""
    lp_before = share_value(lab, "lp")
    start = sum(lab.bal(a) + lab.free(a) for a in ("attacker", "attacker2"))
    lab.fund("attacker", 1_000_000 * USDC)
    return lp_before, start + 1_000_000 * USDC


def _attackers_out(lab, lp_before, start):
    """The attacker redeems everything and both accounts withdraw: their
    P&L (printed with the staying LP's share value)."""
    lab.lp_out("attacker", lab.shares("attacker"), settler="attacker")
    for a in ("attacker", "attacker2"):
        lab.withdraw_all(a)
    end = sum(lab.bal(a) for a in ("attacker", "attacker2"))
    # deposited 2 x 2,000 of engine collateral too (lab.open mints it): count it in start
    start += 2 * (2_000 * USDC + 1_000 * USDC + 10 * USDC)
    pnl = end - start
    print(f"attacker P&L {pnl / USDC:,.2f} USDC; the staying LP {lp_before / USDC:,.2f} -> "
          f"{share_value(lab, 'lp') / USDC:,.2f}")
    return pnl


def test_reserve_lever__hedges_before_a_deposit__buy_in_below_worth(lab):
    """The attacker hedges 0.7 BTC long and short at 104,000 (145,600 of
    notional, +36,400 of reserve, 73 USDC of open fees), requests 1,000,000
    and settles at the next round: before decision 94 the entry valuation
    was 36,400 lower (the hedges are worth nothing to anyone) and the round
    trip earned +20,515.02 USDC from the LP who stayed. Now the long side's
    gain (240,000) is past its side's reserve (200,000 + 18,200): the epoch
    does not price ("vault: past cap") while the hedges stand or after they
    go; it prices once the winner closes (paid its 200,000 cap), at the fair
    valuation. The attacker ends with less than it started with (the fees)
    and the staying LP loses nothing."""
    _winner_past_its_cap(lab)
    lp_before, start = _attackers_in(lab)
    _hedge(lab, 7)  # 0.7 BTC each way
    val = lab.valuation()
    assert val["reserve"] > 200_000 * USDC and val["entry"] == val["cash"] - val["reserve"]  # the views still show it
    lab.request_deposit("attacker", 1_000_000 * USDC)
    lab.round()
    assert lab.reason("attacker", "vault", "settle()") == "vault: past cap"  # the epoch waits
    for a in ("attacker", "attacker2"):
        assert lab.close(a, BTC)
    assert lab.reason("attacker", "vault", "settle()") == "vault: past cap"  # still: the winner is past its cap
    assert lab.v("maxMint(address)", lab.a["attacker"]) == 0
    assert lab.close("trader", BTC)  # the winner takes its 200,000 cap: the wait ends
    lab.settle("attacker")
    lab.claim_all("attacker")
    pnl = _attackers_out(lab, lp_before, start)
    assert pnl <= 0, f"the attacker earned {pnl / USDC:,.2f} USDC"
    assert share_value(lab, "lp") >= lp_before


def test_reserve_lever__hedges_before_a_victims_redemption__pay_it_below_worth(lab):
    """Hedges made while a victim's redemption waits lowered what it was paid
    by its share of the reserve they add (before decision 94: 500,000 paid
    486,022.61, -13,977.39). Now the epoch waits ("vault: past cap", a
    keeper's wait) while the winner is past its cap, hedged or not; once
    the winner closes, the victim is paid at least what its shares were
    worth before the hedges, less a unit of rounding."""
    lab.lp_in("victim", 500_000 * USDC)  # in before the winner is past its cap: LP flows wait in that state
    val0 = _winner_past_its_cap(lab)
    shares = lab.shares("victim")
    fair = lab.v("convertToAssets(uint256)", shares)  # at cash - 200,000: the winner's cap, what it can be paid
    lab.request_redeem("victim", shares)
    _hedge(lab, 7)
    added = lab.valuation()["reserve"] - val0["reserve"]
    assert added == 36_400 * USDC <= val0["claim"] - val0["reserve"]
    assert lab.reason("keeper", "vault", "settle()") == "vault: past cap"
    assert lab.v("claimableRedeemRequest(uint256,address)", 0, lab.a["victim"]) == 0
    assert lab.close("trader", BTC)  # the winner is paid its cap: no side past its reserve
    lab.settle("keeper")
    lab.claim_all("victim")
    paid = lab.bal("victim")
    print(f"victim paid {paid / USDC:,.2f} of a fair {fair / USDC:,.2f} (hedges added {added / USDC:,.2f} "
          f"of reserve, still open)")
    assert paid >= fair - 1


def test_reserve_lever__same_side_legs_that_lift_the_side_reserve__buy_in_below_worth(lab):
    """The residual of decision 94's wait, closed by decision 95: the long
    side's gain (240,000) exceeds its reserve by 40,000; 1.6 BTC long at
    104,000 (+41,600 of long reserve, hedged by 1.6 BTC short) puts the
    side back within its aggregate reserve, so without more the epoch
    would price the side's whole 240,000 gain, 40,000 more than the winner
    can be paid (+22,658.29 USDC to the attacker, played before decision
    95). A position at its payout cap can be closed by anyone at any round,
    paid its cap: the keeper closes the winner in the block after the
    attacker's request, long before the round that prices the epoch. The
    attacker ends with no more than it started with."""
    _winner_past_its_cap(lab)
    lp_before, start = _attackers_in(lab)
    _hedge(lab, 16)  # 1.6 BTC each way
    lab.request_deposit("attacker", 1_000_000 * USDC)
    lab.tx("keeper", "engine", "execute_tp_sl(address,uint256)", lab._who("trader"), BTC)  # at its cap: closed
    assert lab.position("trader", BTC)[0] == 0
    lab.round()
    lab.settle("attacker")
    lab.claim_all("attacker")
    for a in ("attacker", "attacker2"):
        assert lab.close(a, BTC)
    pnl = _attackers_out(lab, lp_before, start)
    assert pnl <= 0, f"the attacker earned {pnl / USDC:,.2f} USDC"


def test_cap_close__a_winner_at_its_cap__anyone_closes_it_at_any_round_and_it_is_paid_its_cap(lab):
    """Decision 95. The winner (10 BTC long from 80,000, cap 200,000 at
    max_profit 25%) at 104,000 is past its cap: a stranger's execute_tp_sl
    closes it in the same round, with no take-profit set and no later round;
    the winner is paid margin + cap - the trading fee on the close - the
    execution fee (100,000 + 200,000 - 520 - 1 = 299,479), the stranger
    earns the execution fee. Below its cap (at 99,000: a gain of 190,000) it is refused
    'not triggered'."""
    lab.tx("owner", "engine", "set_max_profit(uint256)", 25 * 10**16)
    assert lab.open("trader", BTC, 10 * WAD, 100_000 * USDC)
    lab.round({BTC: 99_000})
    assert lab.reason("stranger", "engine", "execute_tp_sl(address,uint256)", lab._who("trader"), BTC) == \
        "not triggered"
    lab.round({BTC: 104_000})
    free_before, stranger_before = lab.free("trader"), lab.free("stranger")
    margin = lab.position("trader", BTC)[2]
    lab.tx("stranger", "engine", "execute_tp_sl(address,uint256)", lab._who("trader"), BTC)
    assert lab.position("trader", BTC)[0] == 0
    fee = lab.free("stranger") - stranger_before
    assert fee > 0
    paid = lab.free("trader") - free_before
    print(f"cap close: margin {margin / USDC:,.2f}, paid {paid / USDC:,.2f}, execution fee {fee / USDC:,.2f}")
    close_fee = 10 * 104_000 * USDC * 5 // 10_000  # the trading fee on the close, 5 bps of 1,040,000: 520
    assert paid == margin + 200_000 * USDC - fee - close_fee  # 299,479.00


# ---------------------------------------------------------------- regressions: the mechanism holds

def test_settle_fee__a_settler_splitting_every_request_into_its_own_epoch__earns_the_cap_per_epoch_only(lab):
    """The owner's maximum fee, 10 USDC. A settler closes and prices an epoch
    after every single request (10 LPs, 10 epochs) instead of one epoch for
    all: it earns exactly 10 x 10 USDC, each LP pays at most 10 USDC, a
    one-unit request pays one unit, and the LP who stayed loses nothing."""
    lab.tx("owner", "vault", "set_settle_fee(uint256)", 10 * USDC)
    assert lab.reason("owner", "vault", "set_settle_fee(uint256)", 10 * USDC + 1) == "vault: fee above cap"
    lp_before = share_value(lab, "lp")
    settler0 = lab.bal("stranger")
    lps = [f"0x{0xabc000 + i:040x}" for i in range(10)]
    for who in lps:
        lab.fund(who, 1_000 * USDC)
        lab.request_deposit(who, 1_000 * USDC)
        lab.round()
        assert lab.settle("stranger") == 1
        lab.claim_all(who)
        # 990 USDC bought shares; at the exit valuation they are worth 990, to rounding
        assert 990 * USDC - 2 <= share_value(lab, who) <= 990 * USDC
    assert lab.bal("stranger") - settler0 == 10 * 10 * USDC
    # a one-unit epoch pays its one unit and no more
    lab.fund("victim", 1)
    lab.request_deposit("victim", 1)
    lab.round()
    assert lab.settle("stranger") == 1
    assert lab.bal("stranger") - settler0 == 100 * USDC + 1
    assert lab.v("claimableDepositRequest(uint256,address)", 0, lab.a["victim"]) == 1
    assert lab.v("maxDeposit(address)", lab.a["victim"]) == 0  # no share for it: claiming would revert
    assert share_value(lab, "lp") >= lp_before


def test_pro_rata_rounding__many_tiny_claims_and_1000_accounts__never_beat_one_claim(lab):
    """One controller claims its deposit in 1,000 claims of one token unit's
    shares and its redemption in 1,000 pieces; 1,000 other accounts request
    the same total as one account, in one epoch. Partial claims end exactly
    at the one-claim totals (the last claim takes the rest); the 1,000
    accounts together get at most what one account gets, and the LP who
    stayed loses nothing."""
    lp_before = share_value(lab, "lp")
    # 1,000 accounts of 1,000.000001 USDC vs one account of the same total, same epoch
    crowd = [f"0x{0xc0000 + i:040x}" for i in range(1000)]
    each = 1_000 * USDC + 1
    for who in crowd:
        lab.tx("owner", "token", "mint(address,uint256)", who, each, dt=0)
        lab.tx(who, "token", "approve(address,uint256)", lab.addr["vault"], 2**256 - 1, dt=0)
        lab.request_deposit(who, each, dt=0)
    lab.fund("attacker", each * 1000)
    lab.request_deposit("attacker", each * 1000)
    lab.round()
    lab.settle("keeper")
    one = lab.v("maxMint(address)", lab.a["attacker"])
    many = [lab.v("maxMint(address)", who) for who in crowd]
    assert sum(many) <= one and one - sum(many) < 1000  # each account rounds down, by less than one share unit
    # the attacker claims its shares 1,000 times, a token unit's worth each, then the rest
    w = lab.a["attacker"]
    for _ in range(1000):
        lab.tx("attacker", "vault", "deposit(uint256,address)", 1_000, w, dt=0)
    lab.tx("attacker", "vault", "deposit(uint256,address)", lab.v("claimableDepositRequest(uint256,address)", 0, w), w)
    assert lab.shares("attacker") == one and lab.v("maxMint(address)", w) == 0
    # and redeems them, claiming in 1,000 pieces (withdraw, shares rounded up) then the rest
    lab.request_redeem("attacker", one)
    lab.round()
    lab.settle("keeper")
    total = lab.v("maxWithdraw(address)", w)
    before = lab.bal("attacker")
    for _ in range(1000):
        lab.tx("attacker", "vault", "withdraw(uint256,address,address)", 1_000, w, w, dt=0)
    lab.tx("attacker", "vault", "withdraw(uint256,address,address)",
           lab.v("maxWithdraw(address)", w), w, w)
    assert lab.bal("attacker") - before == total
    assert total <= each * 1000  # in and out in consecutive epochs: no gain
    assert share_value(lab, "lp") >= lp_before


def test_capacity__open_increase_and_many_small_positions__never_take_cash_below_the_reserve(lab):
    """Ways around the capacity check: one position increased step by step,
    and 40 small positions on 40 accounts, each asking 50,000 of notional,
    against a 1,000,000 vault (2,000,000 of notional at 50%). Every step
    after capacity is cancelled 'vault: capacity'; cash never falls below
    the reserve and the notional stops within one step of 2x cash."""
    steps = 0
    while lab.open("trader", BTC, 5 * WAD // 8, 1_000 * USDC, deposit=2_000 * USDC):  # +50,000 of notional
        steps += 1
        val = lab.valuation()
        assert val["cash"] >= val["reserve"]
    val = lab.valuation()
    assert val["cash"] >= val["reserve"] > val["cash"] - 25_000 * USDC
    assert 39 <= steps <= 40
    filled = 0
    for i in range(10):
        who = f"0x{0xd0000 + i:040x}"
        filled += lab.open(who, ETH, 16 * WAD, 1_000 * USDC, deposit=2_000 * USDC)  # 48,000 of notional
        val = lab.valuation()
        assert val["cash"] >= val["reserve"]
    assert filled == 0  # every account refused: the capacity is the vault's, not the account's


def test_keeper_floor__self_made_bankrupt_position__farming_pays_less_than_it_costs(lab):
    """min_keeper_reward 5 USDC, min_notional 10,000 USDC (5 bps of it pays
    the floor, decision 63). The attacker opens 0.125 BTC long (10,000 of
    notional, 110 of margin) and the same short on a second account, moves
    nothing itself: the price falls to the long's bankruptcy price,
    the attacker's keeper account liquidates it for the 5 USDC floor and
    the short is closed. The three accounts end poorer: the floor is one
    fee, the round trip pays three."""
    lab.tx("owner", "engine", "set_keeper_reward(uint256,uint256)", 5 * USDC, 10_000 * USDC)
    accounts = ("attacker", "attacker2", "stranger")
    start = sum(lab.bal(a) + lab.free(a) for a in accounts)
    minted = 0
    for who, size in (("attacker", WAD // 8), ("attacker2", -WAD // 8)):
        assert lab.open(who, BTC, size, 110 * USDC, deposit=200 * USDC), who
        minted += 200 * USDC
    bankrupt = lab.e("bankruptcy_price(address,uint256)", lab.a["attacker"], BTC)
    lab.round({BTC: -(-bankrupt // WAD)})  # the first whole dollar at or above it: equity 0 or a few cents
    lab.tx("stranger", "engine", "liquidate(address,uint256,address[])", lab.a["attacker"], BTC, [])
    assert lab.position("attacker", BTC)[0] == 0
    assert lab.free("stranger") == 5 * USDC
    assert lab.close("attacker2", BTC)
    for a in accounts:
        lab.withdraw_all(a)
    end = sum(lab.bal(a) for a in accounts)
    pnl = end - start - minted
    assert pnl <= 5 * USDC - 3 * 5 * USDC + 1 * USDC, pnl  # the floor less three 5 bps fees, to 1 USDC
    assert pnl < 0


def test_operators__a_stranger_cannot_request_with_or_claim_an_lps_money(lab):
    """ERC-7540 operators. A stranger cannot request a deposit pulling an
    LP's tokens approved to the vault, nor redeem its shares, nor claim its
    claims to itself; an operator the LP revokes loses the power at once.
    Balances and requests are unchanged by every refusal."""
    lab.fund("victim", 10_000 * USDC)  # approves the vault for everything
    v = lab.a["victim"]
    s = lab.a["stranger"]
    wallet = lab.bal("victim")
    assert lab.reason("stranger", "vault", "requestDeposit(uint256,address,address)", 1_000 * USDC, s, v) == \
        "vault: not operator"
    lab.request_deposit("victim", 5_000 * USDC)
    lab.round()
    lab.settle("keeper")
    assert lab.reason("stranger", "vault", "deposit(uint256,address,address)", 5_000 * USDC, s, v) == \
        "vault: not operator"
    lab.tx("victim", "vault", "setOperator(address,bool)", s, True)
    lab.tx("victim", "vault", "setOperator(address,bool)", s, False)
    assert lab.reason("stranger", "vault", "mint(uint256,address,address)", 1, s, v) == "vault: not operator"
    lab.claim_all("victim")
    shares = lab.shares("victim")
    assert lab.reason("stranger", "vault", "requestRedeem(uint256,address,address)", shares, s, v) != ""
    assert lab.shares("victim") == shares and lab.bal("victim") == wallet - 5_000 * USDC
    assert lab.shares("stranger") == 0 and lab.v("pendingRedeemRequest(uint256,address)", 0, s) == 0
