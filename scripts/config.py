"""Read and validate config/networks.yaml into integers the contracts take.

Every entry is checked with pydantic before anything is sent: unknown keys
(typos), missing keys, non-integers, and each market against the bounds
`positions._set_params` enforces, with the model's constants (which
tests/model/test_constants.py keeps equal to the compiled contracts'). A bad
entry raises `ConfigError` with one line naming the file, the network, the
market and the field:

    config/networks.yaml: local: markets[0] (BTC-PERP): mmf_bps 150 must be below imf_bps 100

Bounds that depend on the collateral's decimals (min_margin and
execution_fee_units) are checked when the decimals are known: from
`collateral.decimals` with mocks, from the token itself (deploy reads it
before its first transaction) otherwise.
"""

from pathlib import Path
from typing import Optional

import yaml
from eth_utils import is_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from model.fixed_point import WAD
from model.positions import (
    DEFAULT_ORDER_EXPIRY, MAX_AMOUNT, MAX_EXECUTION_FEE_TOKENS, MAX_FUNDING_K, MAX_FUNDING_RATE, MAX_KEEPER_SHARE,
    MAX_LIQ_FEE, MAX_MARKETS, MAX_OPEN_INTEREST, MAX_ORDER_EXPIRY, MAX_PRICE, MAX_PRICE_AGE, MAX_TRADING_FEE,
    MAX_BORROW_RATE, MAX_FEED_JUMP, MAX_SEQUENCER_GRACE, MIN_IMF, MIN_ORDER_EXPIRY, MarketParams, OracleParams)
from scripts import validation

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = ROOT / "config" / "networks.yaml"
BPS = 10**14  # 1 bp in 1e18 fixed point
HOUR = 3600
YEAR = 365 * 86400
MAX_TOKEN_DECIMALS = 36  # positions.__init__: "engine: token decimals"
MAX_FEED_DECIMALS = 18  # positions._set_params: "params: feed decimals"
NOT_NETWORKS = {"defaults"}  # YAML anchors, not ape network names


class ConfigError(Exception):
    """A deployment config that would fail, or deploy something unintended."""


# ---- the largest (smallest) config value whose contract integer is in bounds

def _bps_max(cap):
    """Largest b with b * BPS <= cap."""
    return cap // BPS


def _per_hour_max(cap):
    """Largest b with b * BPS // HOUR <= cap."""
    return ((cap + 1) * HOUR - 1) // BPS


IMF_MIN_BPS = -(-MIN_IMF // BPS)  # smallest b with b * BPS >= MIN_IMF
IMF_MAX_BPS = _bps_max(WAD)
TRADING_FEE_MAX_BPS = _bps_max(MAX_TRADING_FEE)
LIQ_FEE_MAX_BPS = _bps_max(MAX_LIQ_FEE)
KEEPER_SHARE_MAX_BPS = _bps_max(MAX_KEEPER_SHARE)
INSURANCE_SHARE_MAX_BPS = _bps_max(WAD)
FUNDING_K_MAX = _per_hour_max(MAX_FUNDING_K)
FUNDING_RATE_MAX = _per_hour_max(MAX_FUNDING_RATE)
OPEN_INTEREST_MAX = MAX_OPEN_INTEREST // 10**18  # whole asset units
BORROW_MAX_BPS_PER_YEAR = ((MAX_BORROW_RATE + 1) * YEAR - 1) // BPS  # largest b with b * BPS // YEAR <= cap


# field: (lowest, highest, the contract check it mirrors)
_RANGES = {
    "imf_bps": (IMF_MIN_BPS, IMF_MAX_BPS, "params: imf, MIN_IMF..100%"),
    "trading_fee_bps": (0, TRADING_FEE_MAX_BPS, "params: trading fee, MAX_TRADING_FEE"),
    "liq_fee_bps": (0, LIQ_FEE_MAX_BPS, "params: liquidation fee, MAX_LIQ_FEE"),
    "keeper_share_bps": (0, KEEPER_SHARE_MAX_BPS, "params: keeper share, MAX_KEEPER_SHARE"),
    "insurance_share_bps": (0, INSURANCE_SHARE_MAX_BPS, "params: insurance share, at most 100%"),
    "funding_k_bps_per_hour": (0, FUNDING_K_MAX, "params: funding, MAX_FUNDING_K"),
    "max_funding_bps_per_hour": (0, FUNDING_RATE_MAX, "params: funding, MAX_FUNDING_RATE"),
    "max_price_age": (1, MAX_PRICE_AGE, "params: price age, seconds, MAX_PRICE_AGE"),
    "max_open_interest": (1, OPEN_INTEREST_MAX, "params: open interest, whole asset units, MAX_OPEN_INTEREST"),
    "borrow_bps_per_year": (0, BORROW_MAX_BPS_PER_YEAR, "params: borrow rate, MAX_BORROW_RATE"),
}


# field: (the field it must stay below, the contract check it mirrors)
_BELOW = {"mmf_bps": ("imf_bps", "params: mmf"), "trading_fee_bps": ("mmf_bps", "params: trading fee")}


def _within(v, lo, hi, why):
    if not lo <= v <= hi:
        raise ValueError(f"must be within {lo}..{hi} ({why})")
    return v


def _decimals(info: ValidationInfo):
    return (info.context or {}).get("decimals")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Market(_Strict):
    """One market; fields in bps/hour/whole units as written in the YAML."""

    name: str = Field(min_length=1)
    initial_price: Optional[int] = None  # mocks only: the MockAggregator's first answer, whole dollars
    feed: Optional[str] = None  # mocks: false only: an AggregatorV3 address
    imf_bps: int
    mmf_bps: int
    trading_fee_bps: int
    liq_fee_bps: int
    keeper_share_bps: int
    insurance_share_bps: int
    funding_k_bps_per_hour: int
    max_funding_bps_per_hour: int
    max_price_age: int
    max_open_interest: int
    min_margin: int
    execution_fee_units: int
    # The borrowing fee (PerpEngine.set_borrow_rate, decision 96): bps of
    # notional a year, paid by longs and shorts alike to the vault; 0: none.
    borrow_bps_per_year: int = 0
    # Oracle hygiene (PerpEngine.set_oracle; docs/trust.md "Oracles"), all
    # optional; any of them needs heartbeat. heartbeat: the feed's heartbeat,
    # seconds, below max_price_age (the difference is the buffer). min_price,
    # max_price: whole USD, inclusive; answers outside are bad. A fallback
    # feed (fallback_feed with mocks: false, fallback_initial_price to deploy
    # a MockAggregator with mocks: true) and its own fallback_max_age.
    heartbeat: Optional[int] = None
    min_price: Optional[int] = None
    max_price: Optional[int] = None
    fallback_feed: Optional[str] = None
    fallback_initial_price: Optional[int] = None
    fallback_max_age: Optional[int] = None

    @model_validator(mode="after")
    def _oracle(self):
        oracle = ("min_price", "max_price", "fallback_feed", "fallback_initial_price", "fallback_max_age")
        if self.heartbeat is None:
            for f in oracle:
                if getattr(self, f) is not None:
                    raise ValueError(f"{f} needs heartbeat (set_oracle)")
            return self
        if not 0 < self.heartbeat < self.max_price_age:
            raise ValueError(f"heartbeat {self.heartbeat} must be within 1..{self.max_price_age - 1}: max_price_age "
                             f"{self.max_price_age} must exceed it by a buffer (oracle: heartbeat)")
        lo = self.min_price if self.min_price is not None else 0
        hi = self.max_price if self.max_price is not None else (MAX_PRICE - 1) // 10**18
        if (self.min_price is not None and lo <= 0) or not lo < hi or hi * 10**18 >= MAX_PRICE:
            raise ValueError(f"min_price {self.min_price} and max_price {self.max_price} must satisfy "
                             f"0 < min_price < max_price < MAX_PRICE / 1e18 (oracle: bounds)")
        for f in ("initial_price", "fallback_initial_price"):
            v = getattr(self, f)
            if v is not None and not lo <= v <= hi:
                raise ValueError(f"{f} {v} is outside min_price..max_price {lo}..{hi} (oracle: bounds exclude price)")
        has_fallback = self.fallback_feed is not None or self.fallback_initial_price is not None
        if has_fallback != (self.fallback_max_age is not None):
            raise ValueError("a fallback feed and fallback_max_age go together (oracle: fallback age)")
        if self.fallback_max_age is not None and not 0 < self.fallback_max_age <= MAX_PRICE_AGE:
            raise ValueError(f"fallback_max_age must be within 1..{MAX_PRICE_AGE} (oracle: fallback age)")
        if self.fallback_feed is not None and self.fallback_feed.lower() == (self.feed or "").lower():
            raise ValueError("fallback_feed must differ from feed (oracle: fallback is primary)")
        if self.initial_price is not None and self.fallback_initial_price is not None:
            if abs(self.fallback_initial_price - self.initial_price) * 10**18 > MAX_FEED_JUMP * self.initial_price:
                raise ValueError(f"fallback_initial_price {self.fallback_initial_price} is more than "
                                 f"{MAX_FEED_JUMP * 100 // 10**18}% from initial_price {self.initial_price} "
                                 f"(oracle: fallback jump)")
        return self

    @field_validator("fallback_feed")
    @classmethod
    def _fallback_feed(cls, v):
        if v is not None and (not is_address(v) or int(v, 16) == 0):
            raise ValueError("must be a nonzero 0x address (40 hex digits, checksummed if mixed case)")
        return v

    @field_validator("initial_price")
    @classmethod
    def _initial_price(cls, v):
        # the feed answer scaled to 1e18 must stay below MAX_PRICE, else "bad price"
        return v if v is None else _within(v, 1, (MAX_PRICE - 1) // 10**18, "a positive price below MAX_PRICE")

    @field_validator("feed")
    @classmethod
    def _feed(cls, v):
        if v is not None and not is_address(v):
            raise ValueError("must be a 0x address (40 hex digits, checksummed if mixed case)")
        if v is not None and int(v, 16) == 0:
            raise ValueError("must not be the zero address (params: feed)")
        return v

    @field_validator(*_RANGES)
    @classmethod
    def _in_range(cls, v, info: ValidationInfo):
        lo, hi, why = _RANGES[info.field_name]
        return _within(v, lo, hi, why)

    @field_validator("mmf_bps")
    @classmethod
    def _mmf_positive(cls, v):
        if v <= 0:
            raise ValueError("must be above 0 (params: mmf)")
        return v

    @field_validator(*_BELOW)
    @classmethod
    def _below(cls, v, info: ValidationInfo):
        other, why = _BELOW[info.field_name]
        bound = info.data.get(other)
        if bound is not None and v >= bound:
            raise ValueError(f"must be below {other} {bound} ({why})")
        return v

    @field_validator("min_margin")
    @classmethod
    def _min_margin(cls, v, info: ValidationInfo):
        d = _decimals(info)
        hi = (MAX_AMOUNT - 1) // 10**d if d is not None else None
        if v <= 0 or (hi is not None and v > hi):
            raise ValueError(f"must be within 1..{hi if hi is not None else ''} (params: min margin, whole tokens)")
        return v

    @field_validator("execution_fee_units")
    @classmethod
    def _execution_fee(cls, v, info: ValidationInfo):
        d = _decimals(info)
        if v < 0:
            raise ValueError("must not be negative (params: execution fee)")
        if d is not None and v > MAX_EXECUTION_FEE_TOKENS * 10**d:
            raise ValueError(f"must be at most {MAX_EXECUTION_FEE_TOKENS * 10**d} "
                             f"(params: execution fee, MAX_EXECUTION_FEE_TOKENS = {MAX_EXECUTION_FEE_TOKENS} "
                             f"whole tokens of {d} decimals)")
        return v


class Collateral(_Strict):
    name: Optional[str] = Field(None, min_length=1, max_length=25)  # mocks: MockToken's String[25]
    symbol: Optional[str] = Field(None, min_length=1, max_length=5)  # mocks: String[5]
    decimals: Optional[int] = Field(None, ge=0, le=MAX_TOKEN_DECIMALS)  # mocks only
    address: Optional[str] = None  # mocks: false only

    @field_validator("address")
    @classmethod
    def _address(cls, v):
        if v is not None and (not is_address(v) or int(v, 16) == 0):
            raise ValueError("must be a nonzero 0x address (40 hex digits, checksummed if mixed case)")
        return v


class Sequencer(_Strict):
    """An L2 sequencer-uptime feed (Chainlink's shape) gating fresh prices
    (PerpEngine.set_sequencer_feed): `feed` with mocks: false, `mock: true`
    deploys a MockSequencerUptimeFeed (devnets); `grace_period` seconds
    after it comes back up during which fresh prices are refused."""

    feed: Optional[str] = None
    mock: bool = False
    grace_period: int = Field(ge=0, le=MAX_SEQUENCER_GRACE)

    @field_validator("feed")
    @classmethod
    def _feed(cls, v):
        if v is not None and (not is_address(v) or int(v, 16) == 0):
            raise ValueError("must be a nonzero 0x address (40 hex digits, checksummed if mixed case)")
        return v

    @model_validator(mode="after")
    def _one_source(self):
        if (self.feed is None) == (not self.mock):
            raise ValueError("give either feed (an existing uptime feed) or mock: true, not both or neither")
        return self
MIN_PUBLIC_DELAY = 86_400  # a network without mocks is for other people: its timelock waits a day or more
MAX_DELAY = 30 * 86_400  # a typo guard: a month


def _role_member(v):
    if v in ("deployer", "anyone"):
        return v
    if not isinstance(v, str) or not is_address(v) or int(v, 16) == 0:
        raise ValueError(f"{v!r} must be 'deployer', 'anyone' (executors only) or a nonzero 0x address")
    return v


class Governance(_Strict):
    """The TimelockController that owns engine, vault and fund (docs/trust.md).

    Members are 0x addresses or 'deployer' (the deploying account);
    executors may be 'anyone' (snekmate's open role: the zero address).
    Proposers also get the canceller role (snekmate), and `cancellers` adds
    more. `pauser` (optional) is named on the engine before the hand-over."""
    min_delay: int = Field(ge=0, le=MAX_DELAY)  # seconds
    proposers: list[str] = Field(min_length=1, max_length=8)
    executors: list[str] = Field(min_length=1, max_length=8)
    cancellers: list[str] = Field(default_factory=list, max_length=8)
    pauser: Optional[str] = None

    @field_validator("proposers", "cancellers")
    @classmethod
    def _members(cls, v):
        for x in v:
            _role_member(x)
            if x == "anyone":
                raise ValueError("'anyone' may only execute")
        return v

    @field_validator("executors")
    @classmethod
    def _executors(cls, v):
        for x in v:
            _role_member(x)
        return v

    @field_validator("pauser")
    @classmethod
    def _pauser(cls, v):
        if v is not None and (v == "anyone" or _role_member(v) is None):
            raise ValueError("must be 'deployer' or a nonzero 0x address")
        return v


# A devnet's governance when its entry names none: no delay, the deployer
# proposes and executes.
DEVNET_GOVERNANCE = {"min_delay": 0, "proposers": ["deployer"], "executors": ["deployer"]}


def governance_of(conf):
    """The governance mapping of a validated entry (as_dict), devnet default filled in."""
    return conf.get("governance") or dict(DEVNET_GOVERNANCE, cancellers=[])


class NetworkConfig(_Strict):
    mocks: bool
    collateral: Collateral
    markets: list[Market] = Field(min_length=1, max_length=MAX_MARKETS)
    feed_decimals: Optional[int] = Field(None, ge=0, le=MAX_FEED_DECIMALS)  # mocks only; 8 if absent
    insurance_seed: int = Field(0, ge=0)  # mocks only: tokens minted into the fund
    vault_seed: int = Field(0, ge=0)  # mocks only: tokens minted and deposited into the vault
    order_expiry: int = Field(DEFAULT_ORDER_EXPIRY, ge=MIN_ORDER_EXPIRY, le=MAX_ORDER_EXPIRY)  # seconds
    # the payout cap, % of entry notional in bps (positions.MIN/MAX_MAX_PROFIT; docs/solvency.md)
    max_profit_bps: int = Field(5000, ge=2500, le=100000)
    # the keeper's floor and the position floor, token units (set_keeper_reward; docs/liquidation.md)
    min_keeper_reward_units: int = Field(0, ge=0)
    min_notional_units: int = Field(0, ge=0, lt=2**128)
    # optional: the L2 sequencer-uptime feed and its grace period
    sequencer: Optional[Sequencer] = None
    # the owner of every contract (scripts/governance.py; docs/trust.md);
    # with mocks, absent means DEVNET_GOVERNANCE
    governance: Optional[Governance] = None

    @model_validator(mode="after")
    def _fees_pay_the_keeper_floor(self):
        # PerpEngine.set_keeper_reward: every market's trading fee on
        # min_notional pays at least min_keeper_reward
        for m in self.markets:
            if m.trading_fee_bps * self.min_notional_units < self.min_keeper_reward_units * 10_000:
                raise ValueError(
                    f"{m.name}: trading_fee_bps {m.trading_fee_bps} on min_notional_units {self.min_notional_units} "
                    f"pays less than min_keeper_reward_units {self.min_keeper_reward_units}")
        return self

    @model_validator(mode="after")
    def _floors_set_for_other_people(self):
        # A network with real feeds and collateral is meant for other people:
        # without a minimum notional a side fills with dust for pocket change
        # and bankrupt liquidations pay their keeper nothing (docs/liquidation.md,
        # "Blocking a side"). The mock devnet may leave both at 0.
        if not self.mocks and (self.min_notional_units == 0 or self.min_keeper_reward_units == 0):
            raise ValueError("min_notional_units and min_keeper_reward_units must be set (> 0) on a network "
                             "without mocks")
        return self

    def as_dict(self):
        """The plain dict callers used before validation existed (None fields dropped)."""
        return self.model_dump(exclude_none=True)


# ---- one-line messages

def _label(path):
    """A path relative to the repo when inside it."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(path)


def _where(loc, raw):
    """('markets', 0, 'mmf_bps') -> 'markets[0] (BTC-PERP): mmf_bps'."""
    parts, i = [], 0
    while i < len(loc):
        key = loc[i]
        if key == "markets" and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            idx = loc[i + 1]
            name = None
            if isinstance(raw, dict) and isinstance(raw.get("markets"), list) and idx < len(raw["markets"]):
                m = raw["markets"][idx]
                name = m.get("name") if isinstance(m, dict) else None
            parts.append(f"markets[{idx}]" + (f" ({name})" if isinstance(name, str) else ""))
            i += 2
        else:
            parts.append(str(key))
            i += 1
    # the market is a prefix of its own; the field path is dotted
    if parts and parts[0].startswith("markets["):
        return parts[0] + (": " + ".".join(parts[1:]) if len(parts) > 1 else "")
    return ".".join(parts)


def _describe(err, raw):
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        return validation.unknown_key(_where(loc[:-1], raw), loc[-1], _known_keys(loc[:-1]))
    return validation.explain(err, _where(loc, raw))


def _known_keys(loc):
    model = NetworkConfig
    if loc[:1] == ("markets",):
        model = Market
    elif loc[:1] == ("collateral",):
        model = Collateral
    elif loc[:1] == ("sequencer",):
        model = Sequencer
    elif loc[:1] == ("governance",):
        model = Governance
    return list(model.model_fields)


def _mode_checks(net):
    """What mocks: true / false needs and ignores: (loc, message) or None."""
    if net.mocks:
        for f in ("name", "symbol", "decimals"):
            if getattr(net.collateral, f) is None:
                return ("collateral", f), "is missing (mocks: true deploys a MockToken)"
        if net.collateral.address is not None:
            return ("collateral", "address"), "is used only with mocks: false"
        if net.sequencer is not None and net.sequencer.feed is not None:
            return ("sequencer", "feed"), "is used only with mocks: false (mocks: true deploys mock: true)"
        for i, m in enumerate(net.markets):
            if m.initial_price is None:
                return ("markets", i, "initial_price"), "is missing (mocks: true deploys a MockAggregator)"
            if m.feed is not None:
                return ("markets", i, "feed"), "is used only with mocks: false"
            if m.fallback_feed is not None:
                return ("markets", i, "fallback_feed"), "is used only with mocks: false (fallback_initial_price deploys a mock)"
    else:
        if net.collateral.address is None:
            return ("collateral", "address"), "is missing (mocks: false uses an existing token)"
        for f in ("name", "symbol", "decimals"):
            if getattr(net.collateral, f) is not None:
                return ("collateral", f), "is used only with mocks: true (the token's own is read)"
        if net.feed_decimals is not None:
            return ("feed_decimals",), "is used only with mocks: true (each feed's own is read)"
        for f in ("insurance_seed", "vault_seed"):
            if getattr(net, f):
                return (f,), "must be 0 with mocks: false (seeds are minted mock tokens)"
        for i, m in enumerate(net.markets):
            if m.feed is None:
                return ("markets", i, "feed"), "is missing (mocks: false reads an existing feed)"
            if m.initial_price is not None:
                return ("markets", i, "initial_price"), "is used only with mocks: true"
            if m.fallback_initial_price is not None:
                return ("markets", i, "fallback_initial_price"), "is used only with mocks: true"
        if net.sequencer is not None and net.sequencer.mock:
            return ("sequencer", "mock"), "is used only with mocks: true (give the network's uptime feed)"
        if net.governance is None:
            return ("governance",), "is missing (mocks: false: a timelock with a delay of a day or more)"
        if net.governance.min_delay < MIN_PUBLIC_DELAY:
            return ("governance", "min_delay"), (f"must be at least {MIN_PUBLIC_DELAY} s (a day) with mocks: false: "
                                                 "users need time to exit before a change lands")
    seen = {}
    for i, m in enumerate(net.markets):
        if m.name in seen:
            return ("markets", i, "name"), f"{m.name!r} repeats markets[{seen[m.name]}]"
        seen[m.name] = i
    return None


def validate(entry, network, source=DEFAULT_PATH, decimals=None):
    """A NetworkConfig from one network's entry, or ConfigError (one line).

    `decimals`: the collateral's decimals when known (deploy reads them from
    an existing token); with mocks they come from collateral.decimals."""
    label = _label(source) if isinstance(source, Path) else str(source)
    head = f"{label}: {network}: "
    if not isinstance(entry, dict):
        raise ConfigError(f"{head}the entry must be a mapping, got {entry!r}")
    if decimals is None and entry.get("mocks") is True and isinstance(entry.get("collateral"), dict):
        d = entry["collateral"].get("decimals")
        if type(d) is int and 0 <= d <= MAX_TOKEN_DECIMALS:
            decimals = d
    try:
        net = NetworkConfig.model_validate(entry, context={"decimals": decimals})
    except ValidationError as e:
        # an unknown key first: a typo also makes the key it misspells missing
        errors = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(head + _describe(errors[0], entry) + more) from None
    bad = _mode_checks(net)
    if bad:
        loc, msg = bad
        raise ConfigError(f"{head}{_where(loc, entry)} {msg}")
    return net


def read(path=None):
    """The YAML file as a dict of network entries, or ConfigError."""
    path = Path(path) if path is not None else DEFAULT_PATH
    label = _label(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{label}: cannot read: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{label}: {where}not valid YAML: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: must map network names to entries")
    return data


def networks(path=None):
    """The network names a config file defines."""
    return [k for k in read(path) if k not in NOT_NETWORKS]


def load_config(network_name, path=None, decimals=None):
    """The validated NetworkConfig of an ape network name ('local', 'sepolia', ...)."""
    path = Path(path) if path is not None else DEFAULT_PATH
    data = read(path)
    if network_name not in data or network_name in NOT_NETWORKS:
        known = ", ".join(k for k in data if k not in NOT_NETWORKS)
        raise ConfigError(f"{_label(path)}: no entry for network {network_name!r} (entries: {known})")
    return validate(data[network_name], network_name, path, decimals)


def load(network_name, path=None):
    """The validated entry of a network as a plain dict (the shape callers index)."""
    return load_config(network_name, path).as_dict()


def market_params(m, feed, token_decimals):
    """A MarketParams (model dataclass, same field order as the contract struct).

    `m`: a market's dict (as `load` returns) or a `Market`."""
    if isinstance(m, Market):
        m = m.model_dump()
    unit = 10**token_decimals
    return MarketParams(
        feed=str(feed),
        imf=m["imf_bps"] * BPS,
        mmf=m["mmf_bps"] * BPS,
        liq_fee=m["liq_fee_bps"] * BPS,
        keeper_share=m["keeper_share_bps"] * BPS,
        trading_fee=m["trading_fee_bps"] * BPS,
        insurance_share=m["insurance_share_bps"] * BPS,
        funding_k=m["funding_k_bps_per_hour"] * BPS // HOUR,
        max_funding_rate=m["max_funding_bps_per_hour"] * BPS // HOUR,
        max_price_age=m["max_price_age"],
        max_open_interest=m["max_open_interest"] * 10**18,
        min_margin=m["min_margin"] * unit,
        execution_fee=m["execution_fee_units"],
    )


def oracle_params(m, fallback):
    """The market's OracleParams for PerpEngine.set_oracle (model dataclass,
    the contract struct's fields first), or None when the market sets no
    heartbeat. `fallback`: the fallback feed's address or None."""
    if isinstance(m, Market):
        m = m.model_dump()
    if m.get("heartbeat") is None:
        return None
    lo, hi = m.get("min_price"), m.get("max_price")
    return OracleParams(
        min_price=lo * 10**18 if lo is not None else 1,
        max_price=hi * 10**18 if hi is not None else MAX_PRICE - 1,
        heartbeat=m["heartbeat"],
        fallback=str(fallback) if fallback is not None else "0x" + "00" * 20,
        fallback_max_age=m.get("fallback_max_age") or 0,
    )


def borrow_rate(m):
    """The market's borrowing fee per second (1e18 = 100% of notional), for
    PerpEngine.set_borrow_rate, rounded down: borrow_bps_per_year * 1e14 / YEAR.

    `m`: a market's dict (as `load` returns) or a `Market`."""
    if isinstance(m, Market):
        m = m.model_dump()
    return m.get("borrow_bps_per_year", 0) * BPS // YEAR
