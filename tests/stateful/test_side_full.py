"""A side of a market holds at most MAX_SIDE_POSITIONS (1,000) positions:
the ADL completeness scan walks the side set, so it is bounded. The
1,001st open order on that side is cancelled at execution with
"market: side full" on chain and in the model, the other side still opens,
and a close frees a place.

1,000 traders is 5,000 transactions: in process (revm), chain and model in
lockstep, compared in full at the end (every stored value of the roles'
accounts, both side sets, the aggregates, the orders named)."""

import copy

import pytest
from eth_utils import keccak, to_checksum_address

from model import positions as P
from tests.stateful.machine import USDC, WAD, Twin

pytestmark = pytest.mark.in_process


def _trader(i):
    return to_checksum_address(keccak(text=f"side-full:{i}")[-20:])


def _execute_all(tw, ids, keeper):
    """execute_order of each id; the outcomes, (status, reason) each."""
    out = []
    for oid in ids:
        assert tw.act(keeper, "execute_order", oid) is None
        out.append(tw.outcome())
    return out


def test_side_full__the_1001st_long__is_cancelled_and_a_close_frees_a_place(revm_session):
    s = revm_session
    b = s.backend
    snap = b.snapshot()
    try:
        tw = Twin(b, copy.deepcopy(s.world), s.now, s.minted, s.accounts)
        owner, keeper = b.accounts["owner"], b.accounts["keeper"]
        size, margin, engine = WAD // 1_000, 10 * USDC, b.addresses["engine"]  # 0.001 BTC at 8x
        buy = 100_000 * WAD  # acceptable for a buy: above the 80,000 answer (the fee escrowed at it)
        longs = [_trader(i) for i in range(P.MAX_SIDE_POSITIONS + 1)]
        for t in longs:
            assert tw.act(t, "token.mint", t, 100 * USDC) is None
            assert tw.act(t, "token.approve", engine, 2**256 - 1) is None
            assert tw.act(t, "deposit", 100 * USDC) is None
        # 1,000 opens requested, one later round, 1,000 executions (a
        # transaction a second: the feeds are restamped on the way)
        ids = []
        for t in longs[:-1]:
            assert tw.act(t, "request_order", 0, size, margin, buy) is None
            ids.append(tw.w.e.order_count)
        for k in range(0, len(ids), 500):
            tw.restamp_feeds(owner)
            assert _execute_all(tw, ids[k:k + 500], keeper) == [("executed", 80_000 * WAD)] * len(ids[k:k + 500])
        tw.restamp_feeds(owner)
        assert len(tw.w.e.members[P.side_key(0, size)]) == P.MAX_SIDE_POSITIONS

        def order(who, mid, delta, margin_delta, acceptable):
            status, reason = tw.order(who, mid, delta, margin_delta, acceptable, keeper, owner)
            return None if status == "executed" else reason

        last = longs[-1]
        # the request is accepted (no price, no side check); the execution cancels it
        assert order(last, 0, size, margin, buy) == "market: side full"
        # the other side and the other market are not full
        assert order(last, 0, -size, margin, 80_000 * WAD) is None  # a sell, the fee escrowed at the price
        assert order(last, 0, size, 0, buy) is None  # closes the short (a reduce)
        assert order(last, 1, size * 10, margin, 10_000 * WAD) is None
        # an increase of a position already in the set still goes through
        assert order(longs[0], 0, size, margin, buy) is None
        # a close frees a place
        assert order(longs[1], 0, -size, 0, 0) is None
        assert order(last, 0, size, margin, buy) is None
        assert order(longs[1], 0, size, margin, buy) == "market: side full"
        tw.compare()
    finally:
        b.restore(snap)
