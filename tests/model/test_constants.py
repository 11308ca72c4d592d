"""The model's constants equal the contracts' constants, read by parsing the
.vy sources (`NAME: constant(type) = value`), so a cap changed on one side
only fails here. Each contract module is compared with the model module of
the same stem (PerpEngine.vy -> model/perp_engine.py)."""

import importlib
import re

import pytest

from model import liquidity_vault, positions
from tests.model.sources import CONTRACTS, constants

# Constants the model does not need, and why.
CHAIN_ONLY = {
    ("positions", "MASK"): "the 128-bit mask of the packed storage slots; the model stores fields unpacked",
    ("perp_orders", "MAX_REVERT"): "the byte bound of the revert data execute_order reads back from its inner "
                                   "call; the model passes the Revert's reason string itself",
}
# Vyper built-ins (max_value/min_value) the model spells out as constants.
MODEL_ONLY = {
    ("fixed_point", "MAX_UINT256"), ("fixed_point", "MIN_INT256"), ("fixed_point", "MAX_INT256"),
}


def model_stem(vy_name):
    """PerpEngine -> perp_engine, positions -> positions."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", vy_name).lower()


# Deployables with no model twin, and why. mocks/ is mirrored by model/mocks.py
# as a whole, not module by module.
NOT_MIRRORED = {
    "BackstopLens": "a stateless batch reader of the engine's views; nothing to mirror",
    "TimelockController": "snekmate's timelock, unchanged; the model takes the timelock's decisions as the "
                          "owner's (docs/trust.md: the delay is tested on chain, not modelled)",
}
MIRRORED = sorted(p for p in CONTRACTS.glob("*.vy") if p.stem not in NOT_MIRRORED)


def test_every_contract_module__has_a_model_module_of_the_same_stem():
    for path in MIRRORED:
        importlib.import_module(f"model.{model_stem(path.stem)}")


@pytest.mark.parametrize("path", MIRRORED, ids=[p.stem for p in MIRRORED])
def test_contract_constants__equal_the_model_constants(path):
    stem = model_stem(path.stem)
    module = importlib.import_module(f"model.{stem}")
    for name, value in constants(path).items():
        if (stem, name) in CHAIN_ONLY:
            assert not hasattr(module, name)
            continue
        assert hasattr(module, name), f"model/{stem}.py lacks {name} (= {value}) of {path.name}"
        assert getattr(module, name) == value, f"{name}: contract {value}, model {getattr(module, name)}"


@pytest.mark.parametrize("path", MIRRORED, ids=[p.stem for p in MIRRORED])
def test_model_constants__exist_in_the_contract(path):
    """The other direction: an upper-case integer the model defines (not
    imports) names a constant of the contract it mirrors."""
    stem = model_stem(path.stem)
    module = importlib.import_module(f"model.{stem}")
    source = (module.__file__ and open(module.__file__).read()) or ""
    defined = set(re.findall(r"^([A-Z][A-Z0-9_]+)\s*=\s*[-\d(]", source, re.M))
    on_chain = set(constants(path))
    extra = {n for n in defined if isinstance(getattr(module, n), int)} - on_chain
    assert extra <= {n for s, n in MODEL_ONLY if s == stem}, f"model/{stem}.py: {sorted(extra)} not in {path.name}"


@pytest.mark.parametrize("name", sorted(NOT_MIRRORED))
def test_unmirrored_contract__agrees_with_the_shared_caps_it_names(name):
    """A constant of a non-mirrored contract that shares its name with one of
    positions.vy (e.g. the lens's MAX_MARKETS) has the same value."""
    path = CONTRACTS / f"{name}.vy"
    if not path.exists():
        pytest.skip(f"{name}.vy is gone")
    shared = constants(CONTRACTS / "positions.vy")
    for const, value in constants(path).items():
        if const in shared:
            assert value == shared[const], f"{name}.{const} = {value}, positions.{const} = {shared[const]}"


def test_named_caps__have_the_documented_values():
    """The figures docs/ and the keeper rely on, by name."""
    assert positions.MAX_SIDE_POSITIONS == 1000
    assert positions.MAX_ADL_TARGETS == 20
    assert positions.MAX_MARKETS == 64
    assert positions.MIN_IMF == 10**16  # 100x
    assert positions.MAX_KEEPER_SHARE == 5 * 10**17
    assert liquidity_vault.DECIMALS_OFFSET == 3
    assert positions.MAX_SIZE == 2**120 and positions.MAX_PRICE == 2**128 and positions.MAX_AMOUNT == 2**128
    # orders (docs/orders.md): expiry 60 s to 7 days, 7,200 s (two 3,600 s
    # heartbeats) by default; the packing bounds of _store_order
    assert positions.MIN_ORDER_EXPIRY == 60
    assert positions.MAX_ORDER_EXPIRY == 7 * 86_400
    assert positions.DEFAULT_ORDER_EXPIRY == 7_200 == positions.EngineState(scale=1, owner="").order_expiry
    assert positions.MAX_ORDER_MARGIN == 2**127 and positions.MAX_ORDER_TIME == 2**35


def test_engine_fixed_size_arrays__use_the_shared_constants():
    """PerpEngine's and PerpExits' ADL target lists are bounded by
    positions.MAX_ADL_TARGETS, not a literal, so the model's cap applies."""
    for name in ("PerpEngine.vy", "PerpExits.vy"):
        text = (CONTRACTS / name).read_text()
        assert "DynArray[address, positions.MAX_ADL_TARGETS]" in text
        assert not re.search(r"DynArray\[address, \d+\]", text)
