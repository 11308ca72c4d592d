"""The build itself: compiler pin, EVM target, contract sizes, and the
storage-layout identity that PerpEngine's delegatecall to PerpExits relies on."""

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


@pytest.mark.parametrize("name", ["PerpEngine", "PerpExits", "LiquidityVault", "InsuranceFund", "BackstopLens"])
def test_deployable__fits_eip170(name):
    """Measured on the artifact ape deploys (optimize: gas, ape-vyper's
    default), not on a codesize build: PerpEngine is the tight one."""
    from ape import project
    runtime = getattr(project, name).contract_type.runtime_bytecode.bytecode
    size = (len(runtime) - 2) // 2
    assert size <= EIP170, f"{name} runtime is {size} bytes, over EIP-170's {EIP170}"


def test_engine_and_exits__share_one_storage_layout():
    """PerpExits runs on PerpEngine's storage by delegatecall: every variable
    must sit in the same slot in both."""
    eng = json.loads(vyper("-f", "layout", "PerpEngine.vy"))["storage_layout"]
    ext = json.loads(vyper("-f", "layout", "PerpExits.vy"))["storage_layout"]
    assert eng == ext
    # and neither declares storage outside the shared modules
    for src in ("PerpEngine.vy", "PerpExits.vy"):
        text = (CONTRACTS / src).read_text()
        own = [line for line in text.splitlines()
               if re.match(r"^\w+: (public\()?(HashMap|uint|int|address|bool|DynArray|transient)", line)]
        assert own == [], f"{src} declares its own storage: {own}"


def test_exits__refuses_a_direct_call(protocol, trader):
    """Called at its own address, PerpExits would act on empty storage."""
    import ape
    with ape.reverts("exits: delegatecall only"):
        protocol.exits.liquidate(trader, 0, [], sender=trader)


@pytest.mark.parametrize("name", ["PerpEngine", "PerpExits", "LiquidityVault", "InsuranceFund", "BackstopLens",
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
