"""The deployment manifest: one JSON file per network, written by
`ape run deploy` (`make deploy`) and read by the keeper and by scripts.

    deployments/<network>.json        e.g. deployments/local.json, deployments/sepolia.json

`<network>` is ape's network name (`local` for the devnet). The folder is
`deployments/` at the repository root, or `$BACKSTOP_DEPLOYMENTS` when set
(tests write theirs into a temporary folder). The file holds every address
(engine, its two facets, vault, insurance fund, token, lens, feeds), the
chain id, the block the deployment finished in and that block's hash (a
reader can tell a chain that was reset or reorganised since), the engine's
code hash, the token's decimals, the order expiry, the engine-wide
parameters and every market's parameters as the engine stores them.

Pure Python (pydantic, no ape): the keeper validates a manifest before it
connects to anything. A missing or malformed file raises `ManifestError`
with one line naming the file and the field.
"""

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

ROOT = Path(__file__).resolve().parent.parent
FORMAT = 1


class ManifestError(Exception):
    """A manifest that is missing, unreadable or malformed: one line."""


def _address(v):
    if not isinstance(v, str) or len(v) != 42 or not v.startswith("0x"):
        raise ValueError(f"{v!r} is not a 20-byte hex address")
    try:
        int(v, 16)
    except ValueError:
        raise ValueError(f"{v!r} is not a 20-byte hex address") from None
    from eth_utils import to_checksum_address
    return to_checksum_address(v)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Contracts(_Strict):
    engine: str
    exits: str
    orders: str
    admin: str
    timelock: str
    vault: str
    insurance_fund: str
    token: str
    lens: str

    @field_validator("*")
    @classmethod
    def _check(cls, v):
        return _address(v)


class Market(_Strict):
    id: int
    name: str
    feed: str
    # The engine's MarketParams, field by field (integers, the contract's
    # units); kept as a mapping so that a field added to the struct needs
    # no change here.
    params: dict[str, int | str]

    @field_validator("feed")
    @classmethod
    def _feed(cls, v):
        return _address(v)


class Token(_Strict):
    symbol: str
    decimals: int


class Manifest(_Strict):
    format: int
    network: str  # ape network name: local, sepolia, ...
    ecosystem: str
    chain_id: int
    block: int  # the head once every deployment transaction was mined
    block_hash: str  # that block's hash: a reset or reorganised chain changes it
    from_block: int  # the first block that can hold a Backstop event
    timestamp: int  # of `block`
    deployer: str
    config: str  # the deployment config it was built from
    contracts: Contracts
    engine_code_hash: str  # keccak256 of the engine's runtime code
    token: Token
    order_expiry: int
    # Engine-wide parameters the engine exposes (max_profit, min_keeper_reward,
    # min_notional, ... where the engine has them), by view name.
    engine_params: dict[str, int] = {}
    markets: list[Market]

    @field_validator("format")
    @classmethod
    def _format(cls, v):
        if v != FORMAT:
            raise ValueError(f"format {v} is not {FORMAT} (written by another version of scripts/deploy.py)")
        return v


def folder():
    """Where manifests live: $BACKSTOP_DEPLOYMENTS, else deployments/."""
    env = os.environ.get("BACKSTOP_DEPLOYMENTS")
    return Path(env) if env else ROOT / "deployments"


def path_for(network):
    """deployments/<network>.json for an ape network name ('local', 'sepolia')
    or a network choice ('ethereum:local:foundry')."""
    parts = network.split(":")
    name = parts[1] if len(parts) > 1 and parts[1] else parts[0]
    return folder() / f"{name}.json"


def _label(path):
    p = Path(path).resolve()
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(path)


def load(path):
    """The validated Manifest at `path`, or ManifestError (one line)."""
    path = Path(path)
    label = _label(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{label}: no deployment manifest (run `make deploy` for this network first)") from None
    except (OSError, ValueError) as e:
        raise ManifestError(f"{label}: unreadable ({type(e).__name__}: {e})") from None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise ManifestError(f"{label}: {where}: {err['msg']}") from None


def write(manifest, path):
    """Validate and write `manifest` (a dict or Manifest) to `path`,
    atomically (a reader never sees half a file)."""
    m = manifest if isinstance(manifest, Manifest) else Manifest.model_validate(manifest)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(m.model_dump(), indent=2) + "\n")
    os.replace(tmp, path)
    return path
