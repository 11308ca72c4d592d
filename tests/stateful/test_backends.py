"""The backends' own plumbing: the hand ABI encoder the in-process backends
use instead of eth_abi agrees with eth_abi on every shape the machine sends,
and revm reports reverts, halts and snapshots the way the machine reads them."""

import pytest
from eth_abi import encode
from hypothesis import given, settings, strategies as st

from tests.stateful.backends import SIGNATURES, _ENCODERS, fast_encode

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
WORDS = {
    "uint256": st.integers(0, 2**256 - 1),
    "int256": st.integers(-(2**255), 2**255 - 1),
    "address": addresses,
    "bool": st.booleans(),
}


def value(t):
    if t.endswith("[]"):
        return st.lists(value(t[:-2]), max_size=25)
    if t.startswith("("):
        return st.tuples(*[value(x) for x in t[1:-1].split(",")])
    return WORDS[t]


@pytest.mark.parametrize("verb", sorted(SIGNATURES))
def test_fast_encode__equals_eth_abi_for_every_machine_verb(verb):
    types = _ENCODERS[verb][2]

    @settings(max_examples=60, deadline=None, database=None)
    @given(st.tuples(*[value(t) for t in types]) if types else st.just(()))
    def check(args):
        assert fast_encode(types, args) == encode(types, list(args))

    check()


@pytest.mark.parametrize("types, args", [
    (["uint256"], [-1]),
    (["uint256"], [2**256]),
    (["int256"], [2**255]),
    (["address"], ["0x1234"]),
])
def test_fast_encode__out_of_range__refused_as_eth_abi_refuses(types, args):
    with pytest.raises(Exception) as ours:
        fast_encode(types, args)
    with pytest.raises(Exception) as theirs:
        encode(types, args)
    assert type(ours.value) is type(theirs.value)


@pytest.fixture(scope="module")
def revm():
    from tests.stateful.backends import RevmBackend

    return RevmBackend(["owner", "trader0", "trader1", "keeper", "lp"])


def test_revm__revert_reason_halt_and_snapshot(revm):
    b = revm
    owner, trader = b.accounts["owner"], b.accounts["trader0"]
    t = b.head_time()
    snap = b.snapshot()
    assert b.send(owner, "token.mint", (trader, 5), t + 1) is None
    # a Vyper revert string comes back as the string
    assert b.send(trader, "deposit", (10,), t + 2) == "erc20: insufficient allowance"
    # a revert without a reason (checked arithmetic: total supply overflows) comes back as ""
    assert b.send(owner, "token.mint", (trader, 2**256 - 1), t + 3) == ""
    # a halt (here the INVALID opcode) can never pass for a revert
    import pyrevm

    bad = "0x" + "fe" * 20
    b.evm.insert_account_info(bad, pyrevm.AccountInfo(code=b"\xfe"))
    ok, out = b._call(owner, bad, b"")
    assert not ok and out.startswith(b"halt: ")
    stored, _ = b.read([owner, trader])
    assert stored[("bal", trader.lower())] == 5
    b.restore(snap)
    stored, _ = b.read([owner, trader])
    assert stored[("bal", trader.lower())] == 0
    assert b.head_time() == t
