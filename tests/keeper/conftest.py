"""Fixtures for the keeper's tests: the devnet node the test runs on, the
keeper's account as the command line names it, and keeper processes that
are stopped when the test ends."""

import pytest
from ape import chain
from eth_abi import decode

from bots import devnet as D
from bots import rpc as R


@pytest.fixture
def node():
    n = D.Node(chain.provider.uri)
    n.automine()
    yield n
    n.automine()


@pytest.fixture
def keeper_account(accounts, keeper):
    """`--account TEST::<index>` for the `keeper` role."""
    index = [a.address for a in accounts].index(keeper.address)
    return f"TEST::{index}"


@pytest.fixture
def run_keeper(protocol, keeper_account, tmp_path):
    """start(*extra_args) -> a running KeeperProcess (one log, one state file
    per test, shared by restarts)."""
    procs = []

    def start(*extra):
        k = D.KeeperProcess(protocol.engine.address, account=keeper_account, state_file=tmp_path / "keeper-state.json",
                            log_file=tmp_path / "keeper.log", extra=extra).start()
        procs.append(k)
        return k

    yield start
    for k in procs:
        k.stop()


def view(node, to, sig, types, args, out, block):
    """A view read at one block number."""
    (r,) = node.rpc.calls([(to, R.calldata(sig, types, args))], hex(block))
    if isinstance(r, Exception):
        raise r
    return decode(out, bytes.fromhex(r[2:]))


def position_at(node, engine, account, market_id, block):
    (pos,) = view(node, engine, "get_position(address,uint256)", ["address", "uint256"], [account, market_id],
                  [f"({','.join(R.POSITION)})"], block)
    return pos


def liquidatable_at(node, engine, account, market_id, block):
    (ok,) = view(node, engine, "is_liquidatable(address,uint256)", ["address", "uint256"], [account, market_id], ["bool"], block)
    return ok
