"""The keeper's start-up checks: each bad input or mismatch is one
`StartupError` line, raised before anything is sent.

- the engine address is a 20-byte hex address, holds code, and that code is
  the PerpEngine this checkout compiles (runtime bytecode, immutables
  excluded: the version whose rules model/ mirrors); another Backstop
  contract given by mistake is named ("... is the LiquidityVault");
- the node's chain id is the manifest's, and the manifest's deployment
  block still has the recorded hash (a reset or reorganised devnet fails
  here with what to do);
- the keeper account holds at least the minimum balance;
- the state file's folder exists and is writable.

Pure JSON-RPC (bots/rpc.py); the compiled code is read from ape's build
folder (.build/__local__.json), written by `make compile`.
"""

import json
import os
from functools import lru_cache
from pathlib import Path

from eth_utils import keccak, to_checksum_address

from bots import rpc as R

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".build" / "__local__.json"
# What an address given as the engine may be instead, to name it.
OTHER_CONTRACTS = ("LiquidityVault", "InsuranceFund", "PerpExits", "PerpOrders", "PerpAdmin", "BackstopLens", "MockToken",
                   "MockAggregator")


class StartupError(Exception):
    """A bad input or a failed start-up check: one line, exit code 2."""


def address(text, what):
    """`text` as a checksummed address, or StartupError naming `what`."""
    t = (text or "").strip()
    if len(t) != 42 or not t.lower().startswith("0x"):
        raise StartupError(f"{what} {text!r} is not an address (0x and 40 hex digits)")
    try:
        int(t[2:], 16)
    except ValueError:
        raise StartupError(f"{what} {text!r} is not an address (0x and 40 hex digits)") from None
    return to_checksum_address(t)


def state_file(path):
    """The state file's folder must exist and be writable; the file itself,
    when present, must be a file."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise StartupError(f"--state-file {path}: folder {folder} does not exist (create it, or choose another path)")
    if p.exists() and not p.is_file():
        raise StartupError(f"--state-file {path}: is not a file")
    if not os.access(folder, os.W_OK):
        raise StartupError(f"--state-file {path}: folder {folder} is not writable")
    return p


@lru_cache(maxsize=None)
def compiled_runtimes():
    """{contract name: runtime bytecode (bytes)} from ape's build folder."""
    try:
        types = json.loads(BUILD.read_text())["contractTypes"]
    except (OSError, ValueError, KeyError) as e:
        raise StartupError(f"no compiled contracts in {BUILD.relative_to(ROOT)} ({type(e).__name__}): "
                           "run `make compile` first") from None
    out = {}
    for name in ("PerpEngine", *OTHER_CONTRACTS):
        code = ((types.get(name) or {}).get("runtimeBytecode") or {}).get("bytecode")
        if code:
            out[name] = bytes.fromhex(code[2:] if code.startswith("0x") else code)
    if "PerpEngine" not in out:
        raise StartupError(f"{BUILD.relative_to(ROOT)} has no PerpEngine: run `make compile` first")
    return out


def engine_version():
    """A short name for the engine code this keeper knows: the first 8 hex
    digits of keccak256 of PerpEngine's compiled runtime bytecode."""
    return keccak(compiled_runtimes()["PerpEngine"]).hex()[:8]


def code_at(rpc, addr, block="latest"):
    code = rpc.request("eth_getCode", [addr, block])
    return bytes.fromhex(code[2:]) if code and code not in ("0x", "0x0") else b""


def check_engine(rpc, engine, chain_id):
    """The code at `engine` must be this checkout's PerpEngine (vyper
    appends the immutables after the runtime code, so the deployed code
    starts with the compiled runtime)."""
    code = code_at(rpc, engine)
    if not code:
        raise StartupError(f"--engine {engine}: no contract there on chain {chain_id} "
                           "(wrong address or network, or a devnet that was reset: deploy again)")
    known = compiled_runtimes()
    if code.startswith(known["PerpEngine"]):
        return keccak(code)
    for name in OTHER_CONTRACTS:
        if name in known and code.startswith(known[name]):
            raise StartupError(f"--engine {engine}: that is the {name}, not the PerpEngine "
                               "(the manifest's contracts.engine is the engine)")
    # Another version of a Backstop contract wired to an engine (the vault
    # and the insurance fund expose ENGINE()): name the engine it points to.
    try:
        wired = rpc.request("eth_call", [{"to": engine, "data": R.calldata("ENGINE()", [], [])}, "latest"])
    except (R.Reverted, R.RpcError):
        wired = None
    if isinstance(wired, str) and len(wired) == 66:
        raise StartupError(f"--engine {engine}: that is a contract wired to the engine at "
                           f"{to_checksum_address('0x' + wired[-40:])} (the vault or the insurance fund), not the engine")
    raise StartupError(f"--engine {engine}: not a Backstop PerpEngine of the version this keeper knows "
                       f"({engine_version()}): its code differs from contracts/PerpEngine.vy as compiled here")


def check_manifest(rpc, manifest, chain_id, label):
    """The node must be on the manifest's chain, still have its deployment
    block, and hold the engine code it recorded."""
    if manifest.chain_id != chain_id:
        raise StartupError(f"{label}: chain id {manifest.chain_id}, but the node is on chain {chain_id} "
                           "(wrong --network or --rpc)")
    blk = rpc.request("eth_getBlockByNumber", [hex(manifest.block), False])
    if blk is None or blk.get("hash", "").lower() != manifest.block_hash.lower():
        raise StartupError(f"{label}: block {manifest.block} of the deployment is "
                           f"{'missing' if blk is None else 'different'} on chain {chain_id}: the chain was reset or "
                           "reorganised since `make deploy` (deploy again)")
    code = code_at(rpc, manifest.contracts.engine)
    if "0x" + keccak(code).hex() != manifest.engine_code_hash.lower():
        raise StartupError(f"{label}: the code at contracts.engine {manifest.contracts.engine} is not the code "
                           "recorded at deployment")


def check_balance(rpc, who, min_wei, chain_id):
    """The account's balance (wei); StartupError below `min_wei`."""
    bal = int(rpc.request("eth_getBalance", [who, "latest"]), 16)
    if bal < min_wei:
        raise StartupError(f"keeper account {who} holds {bal / 1e18:.6g} ETH on chain {chain_id}, below "
                           f"--min-balance {min_wei / 1e18:g} ETH: fund it first (nothing was sent)")
    return bal


def check_node(rpc, what):
    """The node answers; its chain id."""
    try:
        return int(rpc.request("eth_chainId", []), 16)
    except (R.RpcError, R.Reverted) as exc:
        raise StartupError(f"no node answers at {what} ({exc}); start the devnet first (`make devnet`) "
                           "or pass --rpc") from None
