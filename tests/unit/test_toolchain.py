"""The build itself: compiler pin, EVM target, contract sizes, and the
storage-layout identity that PerpEngine's delegatecalls to its facets
(PerpExits, PerpOrders, PerpAdmin) rely on."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
VYPER = ROOT / ".venv" / "bin" / "vyper"
EIP170 = 24_576
# PerpEngine and every contract whose code runs on its storage by delegatecall.
FACETS = ("PerpEngine", "PerpExits", "PerpOrders", "PerpAdmin")


def vyper(*args):
    out = subprocess.run([str(VYPER), "--evm-version", "prague", "-O", "codesize", *args],
                         cwd=CONTRACTS, capture_output=True, text=True, check=True)
    return out.stdout


def test_every_source__pins_vyper_0_4_3():
    sources = sorted(CONTRACTS.rglob("*.vy")) + sorted(CONTRACTS.rglob("*.vyi"))
    assert sources
    for src in sources:
        first = src.read_text().splitlines()[0]
        assert first == "# pragma version 0.4.3", f"{src.relative_to(ROOT)} starts with {first!r}"


def test_ape_config__pins_compiler_and_prague():
    conf = yaml.safe_load((ROOT / "ape-config.yaml").read_text())
    assert conf["vyper"]["version"] == "0.4.3"
    assert conf["vyper"]["evm_version"] == "prague"
    assert conf["foundry"]["evm_version"] == "prague"


def test_installed_compiler__is_0_4_3():
    out = subprocess.run([str(VYPER), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("0.4.3"), out


@pytest.mark.parametrize("name", [*FACETS, "LiquidityVault", "InsuranceFund", "BackstopLens", "TimelockController"])
def test_deployable__fits_eip170(name):
    """Measured on the artifact ape deploys (optimize: gas, ape-vyper's
    default), not on a codesize build: PerpEngine is the tight one."""
    from ape import project
    runtime = getattr(project, name).contract_type.runtime_bytecode.bytecode
    size = (len(runtime) - 2) // 2
    assert size <= EIP170, f"{name} runtime is {size} bytes, over EIP-170's {EIP170}"


def test_engine_and_every_facet__share_one_storage_layout():
    """PerpExits, PerpOrders and PerpAdmin run on PerpEngine's storage by
    delegatecall: every variable must sit in the same slot (same type, same
    length) in all four."""
    full = {name: json.loads(vyper("-f", "layout", f"{name}.vy")) for name in FACETS}
    layouts = {name: full[name]["storage_layout"] for name in FACETS}
    engine = layouts["PerpEngine"]
    assert engine, "the engine's layout is empty: nothing was compared"
    # the order book is there: the facets do not just agree on the old part
    assert "_orders" in json.dumps(engine) and "order_count" in json.dumps(engine)
    for name in FACETS[1:]:
        assert layouts[name] == engine, f"{name}'s storage layout differs from PerpEngine's"
    # Transient storage too: the same variables in the same slots, and no
    # facet uses the slot of the engine's reentrancy lock (the facets run
    # under that lock and take none of their own).
    transient = dict(full["PerpEngine"]["transient_storage_layout"])
    lock = transient.pop("$.nonreentrant_key")
    assert transient, "the engine's transient layout holds nothing but the lock: nothing was compared"
    for name in FACETS[1:]:
        theirs = full[name]["transient_storage_layout"]
        assert theirs == transient, f"{name}'s transient layout differs from PerpEngine's"
        assert lock["slot"] not in {v["slot"] for module in theirs.values() for v in module.values()}
    # and none declares storage outside the shared modules
    for name in FACETS:
        text = (CONTRACTS / f"{name}.vy").read_text()
        own = [line for line in text.splitlines()
               if re.match(r"^\w+: (public\()?(HashMap|uint|int|address|bool|DynArray|transient)", line)]
        assert own == [], f"{name}.vy declares its own storage: {own}"


def test_engine__forwards_to_every_facet_it_was_deployed_with(protocol):
    """The facets the layout test compares are the ones the engine calls."""
    assert protocol.engine.EXITS() == protocol.exits.address
    assert protocol.engine.ORDERS() == protocol.orders.address
    assert protocol.engine.ADMIN() == protocol.admin.address


def test_exits__refuses_a_direct_call(protocol, trader):
    """Called at its own address, PerpExits would act on empty storage."""
    import ape
    with ape.reverts("exits: delegatecall only"):
        protocol.exits.liquidate(trader, 0, [], sender=trader)


@pytest.mark.parametrize("verb, args", [
    ("execute_order", (1,)),
    ("execute_order_inner", (1, "0x" + "11" * 20, 80_000 * 10**18)),
])
def test_orders__refuses_a_direct_call(protocol, trader, verb, args):
    """Called at its own address, PerpOrders would act on empty storage."""
    import ape
    with ape.reverts("orders: delegatecall only"):
        getattr(protocol.orders, verb)(*args, sender=trader)


@pytest.mark.parametrize("verb, args", [
    ("initialize", ("0x" + "11" * 20, "0x" + "22" * 20)),
    ("set_pauser", ("0x" + "11" * 20,)),
    ("set_order_expiry", (3600,)),
    ("set_max_profit", (10**18,)),
    ("set_keeper_reward", (0, 0)),
    ("transfer_ownership", ("0x" + "11" * 20,)),
    ("accept_ownership", ()),
    ("pause", ()),
    ("unpause", ()),
    ("request_order", (0, 10**18, 10**9, 80_000 * 10**18)),
    ("cancel_order", (1,)),
])
def test_admin__refuses_a_direct_call(protocol, owner, verb, args):
    """Called at its own address, PerpAdmin would act on its own empty
    storage (where its deployer is the owner): it refuses first."""
    import ape
    with ape.reverts("admin: delegatecall only"):
        getattr(protocol.admin, verb)(*args, sender=owner)


@pytest.mark.parametrize("name", [*FACETS, "LiquidityVault", "InsuranceFund", "BackstopLens", "TimelockController",
                                  "MockToken", "MockAggregator"])
def test_in_process_backends__run_the_bytecode_ape_deploys(name):
    """The revm and titanoboa backends compile through titanoboa's loader;
    the differential machine's in-process runs count only if that is the
    very bytecode ape-vyper builds for the devnet."""
    from ape import project

    from tests.stateful.backends import compile_source

    rel = f"mocks/{name}.vy" if name.startswith("Mock") else f"{name}.vy"
    ape_code = getattr(project, name).contract_type.deployment_bytecode.bytecode
    assert "0x" + compile_source(CONTRACTS / rel).compiler_data.bytecode.hex() == ape_code
