# pragma version 0.4.3
"""
@title PerpExits
@notice The keeper's ways out of a position: TP/SL, liquidation, the
        insurance-fund draw and auto-deleveraging, for PerpEngine (a
        trader's own closes and margin removals are orders, PerpOrders).
        It runs only by delegatecall from PerpEngine, on PerpEngine's
        storage (same modules initialized in the same order), under
        PerpEngine's reentrancy lock. model/perp_exits.py mirrors
        every function.
@custom:security Called directly, every function reverts
        "exits: delegatecall only": its own storage is never used.
"""

from ethereum.ercs import IERC20
from snekmate.auth import ownable
from snekmate.auth import ownable_2step
from snekmate.utils import pausable

import fixed_point as fp
import margin
import funding
import positions
import adl

initializes: ownable
initializes: ownable_2step[ownable := ownable]
initializes: pausable
initializes: positions
initializes: adl[positions := positions]

SELF: immutable(address)


@deploy
def __init__(collateral: IERC20):
    """
    @notice Deploy with the same collateral as the engine that will use it
            (immutables live in code, so they must match).
    """
    ownable.__init__()
    ownable_2step.__init__()
    pausable.__init__()
    positions.__init__(collateral)
    SELF = self


@internal
@view
def _only_delegated():
    assert self != SELF, "exits: delegatecall only"


@external
def execute_tp_sl(account: address, market_id: uint256):
    """
    @notice Permissionless: fully close `account`'s position at the oracle
            price once its take-profit or stop-loss is crossed, at a price
            from a round later than the block the triggers were set in (a
            trigger set already crossed is no instant exit at a known price);
            or once its profit net of funding has reached its payout cap, at
            any round (it is paid the most it can ever be paid, whatever the
            price does next: decision 95). The caller earns the market's
            fixed execution fee, paid from the position.
    """
    self._only_delegated()
    positions._check_market(market_id)
    old: positions.Position = positions._load(account, market_id)
    assert old.size != 0, "position: none"
    price: uint256 = 0
    updated: uint256 = 0
    price, updated = positions._round(market_id, True)
    idx: int256 = positions._accrue(market_id, price, old.size)
    at_cap: bool = positions._past_cap(old, price, idx)
    assert at_cap or positions._tp_sl_hit(old, price), "not triggered"
    assert at_cap or updated > positions._tp_sl_at[account][market_id], "tp_sl: no later price"
    p: positions.MarketParams = positions._market_params(market_id)
    payout: uint256 = positions._reduce(account, market_id, old, old.size, price, idx, p, msg.sender)
    # The escape pays: its share of every pending job it is a target of.
    adl._escape(account, market_id, old, old.size, payout)


# ---------------------------------------------------------------- liquidation


@external
def liquidate(account: address, market_id: uint256, adl_targets: DynArray[address, positions.MAX_ADL_TARGETS]):
    """
    @notice Permissionless. Close a liquidatable position in full at the
            oracle price. Positive equity pays a penalty (capped at the
            equity) split between caller and insurance fund; bad debt is paid
            by the fund up to its balance; the rest is deleveraged at the
            bankruptcy price against `adl_targets`, which must be ranked as
            `adl_ranking` ranks them. While a job is pending in the market,
            a new job queues behind it (`adl_targets` unused; "adl: queue
            full" past MAX_ADL_JOBS). See docs/liquidation.md.
    """
    self._only_delegated()
    positions._check_market(market_id)
    old: positions.Position = positions._load(account, market_id)
    assert old.size != 0, "position: none"
    price: uint256 = positions._price(market_id, True)
    p: positions.MarketParams = positions._market_params(market_id)
    idx: int256 = positions._accrue(market_id, price, old.size)
    owed: int256 = funding.owed(old.size, idx, old.funding_index, positions.SCALE)
    eff: int256 = convert(old.margin, int256) - owed
    pnl: int256 = positions._capped_pnl(margin.upnl(old.size, old.entry_price, price, positions.SCALE), owed, old.size, old.entry_price)
    equity: int256 = eff + pnl
    assert equity < convert(margin.requirement(old.size, price, positions._mmf(market_id), positions.SCALE), int256), "position healthy"

    positions._write(account, market_id, old, empty(positions.Position))
    penalty: uint256 = 0
    reward: uint256 = 0
    bad_debt: uint256 = 0
    if equity > 0:
        penalty = min(margin.requirement(old.size, price, p.liq_fee, positions.SCALE), convert(equity, uint256))
        reward = fp.mul_div_down(penalty, p.keeper_share, positions.WAD)
        positions._free[msg.sender] += reward
        positions._free[account] += convert(equity, uint256) - penalty
    else:
        bad_debt = convert(-equity, uint256)
    # The vault's claim on a close at the oracle price is owed - pnl; with
    # bad debt it receives only what the position holds (its margin).
    positions._settle(owed - pnl - convert(bad_debt, int256), penalty - reward)
    # The keeper's floor comes before bad debt: the fund pays it first.
    advanced: uint256 = positions._pay_keeper_floor(msg.sender, reward)
    log positions.PositionLiquidated(
        account=account,
        market_id=market_id,
        size=old.size,
        price=price,
        penalty=penalty,
        keeper_reward=reward,
        bad_debt=bad_debt,
    )
    if bad_debt == 0:
        return

    fund_balance: uint256 = staticcall positions.COLLATERAL.balanceOf(positions.insurance_fund.address)
    covered: uint256 = min(fund_balance, bad_debt)
    if covered > 0:
        extcall positions.insurance_fund.cover(positions.vault.address, covered)
        log positions.InsuranceFundDrawn(amount=covered, remaining=fund_balance - covered)
    # what the vault advanced for the keeper joins the deficit ADL covers
    uncovered: uint256 = bad_debt - covered + advanced
    if uncovered == 0:
        return
    job: positions.AdlPending = positions.AdlPending(
        remaining=uncovered,
        bad_debt=bad_debt + advanced,
        bankrupt_size=old.size,
        size_left=convert(abs(old.size), uint256),
        bankrupt=account,
        bankruptcy_price=margin.bankruptcy_price(old.size, old.entry_price, eff, positions.SCALE),
        price=price,
    )
    if positions._adl_count[market_id] == positions.MAX_ADL_JOBS:
        # The queue is full: a liquidation is never blocked (its bad debt
        # would grow with the price), so the LPs absorb this one's deficit
        # now (decision 92; docs/redteam-protocol.md A2).
        log positions.BadDebtSocialized(market_id=market_id, amount=uncovered)
        return
    if positions._adl_count[market_id] > 0:
        # Jobs queue, oldest first: this one waits its turn (`adl_targets`
        # is not used) and the liquidation itself is final.
        adl._push(market_id, job)
        log positions.DeleveragePending(market_id=market_id, bankrupt=account, remaining=uncovered)
        return
    # the targets are on the other side: they settle against its index
    job = adl._deleverage(market_id, job, adl_targets, price, positions._pending_index(market_id, price, -old.size), p)
    if job.remaining > 0:
        adl._push(market_id, job)


@external
def deleverage(market_id: uint256, adl_targets: DynArray[address, positions.MAX_ADL_TARGETS]):
    """
    @notice Permissionless. Continue the market's oldest pending ADL job
            (see `adl_pending`), at the price it was created at. Same
            ranking rules as `liquidate`.
    """
    self._only_delegated()
    positions._check_market(market_id)
    assert positions._adl_count[market_id] > 0, "adl: nothing pending"
    job: positions.AdlPending = positions._adl_jobs[market_id][0]
    price: uint256 = positions._price(market_id, True)
    p: positions.MarketParams = positions._market_params(market_id)
    idx: int256 = positions._accrue(market_id, price, -job.bankrupt_size)  # the targets' side
    job.remaining += positions._pay_keeper_floor(msg.sender, 0)
    job = adl._deleverage(market_id, job, adl_targets, price, idx, p)
    if job.remaining > 0:
        positions._adl_jobs[market_id][0] = job
    else:
        adl._remove(market_id, 0)
