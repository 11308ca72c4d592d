"""A side of a market holds at most MAX_SIDE_POSITIONS (1,000) positions:
the ADL completeness scan walks the side set, so it is bounded. The
1,001st open on that side reverts "market: side full" on chain and in the
model, the other side still opens, and a close frees a place.

1,000 traders is 4,000 transactions: in process (revm), chain and model in
lockstep, compared in full at the end (every stored value of the roles'
accounts, both side sets, the aggregates)."""

import copy

import pytest
from eth_utils import keccak, to_checksum_address

from model import positions as P
from tests.stateful.machine import USDC, WAD, Twin

pytestmark = pytest.mark.in_process


def _trader(i):
    return to_checksum_address(keccak(text=f"side-full:{i}")[-20:])


def test_side_full__the_1001st_long__reverts_and_a_close_frees_a_place(revm_session):
    s = revm_session
    b = s.backend
    snap = b.snapshot()
    try:
        tw = Twin(b, copy.deepcopy(s.world), s.now, s.minted, s.accounts)
        owner = b.accounts["owner"]
        size, margin, engine = WAD // 1_000, 10 * USDC, b.addresses["engine"]  # 0.001 BTC at 8x
        longs = [_trader(i) for i in range(P.MAX_SIDE_POSITIONS + 1)]
        for t in longs:
            assert tw.act(t, "token.mint", t, 100 * USDC) is None
            assert tw.act(t, "token.approve", engine, 2**256 - 1) is None
            assert tw.act(t, "deposit", 100 * USDC) is None
        for i, t in enumerate(longs[:-1]):
            if i % 500 == 0:  # a transaction a second: keep the answers fresh
                tw.restamp_feeds(owner)
            assert tw.act(t, "open_position", 0, size, margin, 2**200) is None
        tw.restamp_feeds(owner)
        assert len(tw.w.e.members[P.side_key(0, size)]) == P.MAX_SIDE_POSITIONS

        last = longs[-1]
        assert tw.act(last, "open_position", 0, size, margin, 2**200) == "market: side full"
        # the other side and the other market are not full
        assert tw.act(last, "open_position", 0, -size, margin, 0) is None
        assert tw.act(last, "close_position", 0, size, 2**200) is None
        assert tw.act(last, "open_position", 1, size * 10, margin, 2**200) is None
        # an increase of a position already in the set still goes through
        assert tw.act(longs[0], "open_position", 0, size, margin, 2**200) is None
        # a close frees a place
        assert tw.act(longs[1], "close_position", 0, -size, 0) is None
        assert tw.act(last, "open_position", 0, size, margin, 2**200) is None
        assert tw.act(longs[1], "open_position", 0, size, margin, 2**200) == "market: side full"
        tw.compare()
    finally:
        b.restore(snap)
