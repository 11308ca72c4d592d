"""Read and validate a crash scenario (scenarios/*.yaml) for the demo.

Every field is checked with pydantic before anything is deployed: unknown
keys (typos, nested ones too), missing keys, non-integers, negative or zero
prices and counts, ranges written backwards, crash times that do not
increase, and the scenario against the deployment config it will run on
(the market exists; no leverage above 1 / imf; no margin below the market's
min_margin). A bad scenario raises `ScenarioError` (a `ConfigError`, the
same one-line convention as scripts/config.py) naming the file and the
field:

    scenarios/my.yaml: crash[5] (t=6 s): price -76800 must be above 0
    scenarios/my.yaml: traders.stop_loss: unknown key 'percent_of_long' (did you mean 'percent_of_longs'?)

`load_scenario(path)` returns a `Scenario`; `.as_dict()` is the plain dict
(YAML shape, integers) the demo and the report index.
"""

import re
from pathlib import Path
from typing import Annotated, Optional, get_args

import yaml
from annotated_types import Len
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

from model.positions import MAX_PRICE
from scripts import config as cfg
from scripts import validation

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = ROOT / "scenarios" / "crash.yaml"
MAX_WHOLE_PRICE = (MAX_PRICE - 1) // 10**18  # whole USD: the feed answer scaled to 1e18 stays below MAX_PRICE
TEST_ACCOUNTS = 30  # ape-config.yaml test.number_of_accounts; account 0 deploys and drives the demo
MAX_ACCOUNTS = 5_000  # generated accounts per run (traders + LPs): one block carries each batch


class ScenarioError(cfg.ConfigError):
    """A scenario the demo would reject part-way or play wrongly."""


class _At(ValueError):
    """A model-level check that names its own field."""

    def __init__(self, loc, msg):
        super().__init__(msg)
        self.loc, self.msg = loc, msg


# [lowest, highest], both included, lowest <= highest (checked per field)
Pair = Annotated[list[StrictInt], Len(2, 2)]


PAIRS = {"deposit", "margin", "way_to_liquidation", "below_entry"}  # the Pair fields


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _pair(v, lo, hi, what):
    a, b = v
    if a > b:
        raise ValueError(f"must be [lowest, highest], got [{a}, {b}]")
    if a < lo or (hi is not None and b > hi):
        raise ValueError(f"must lie within {lo}..{hi if hi is not None else ''} ({what})")
    return v


class Lps(_Strict):
    count: StrictInt = Field(ge=1, le=MAX_ACCOUNTS)
    deposit: Pair  # whole tokens, each LP a random amount in the range

    @field_validator("deposit")
    @classmethod
    def _deposit(cls, v):
        return _pair(v, 1, None, "whole tokens")


class StopLoss(_Strict):
    percent_of_longs: StrictInt = Field(ge=0, le=100)
    max_leverage: StrictInt = Field(ge=1)
    way_to_liquidation: Pair

    @field_validator("way_to_liquidation")
    @classmethod
    def _way(cls, v):
        return _pair(v, 1, 99, "% of the way from entry to the liquidation price")


class TakeProfit(_Strict):
    percent_of_shorts: StrictInt = Field(ge=0, le=100)
    below_entry: Pair

    @field_validator("below_entry")
    @classmethod
    def _below(cls, v):
        return _pair(v, 1, 99, "% below entry")


class Traders(_Strict):
    count: StrictInt = Field(ge=1, le=MAX_ACCOUNTS)
    long_percent: StrictInt = Field(ge=0, le=100)
    margin: Pair  # whole tokens
    leverage: dict[StrictInt, StrictInt] = Field(min_length=1)  # leverage: weight
    stop_loss: Optional[StopLoss] = None
    take_profit: Optional[TakeProfit] = None

    @field_validator("margin")
    @classmethod
    def _margin(cls, v):
        return _pair(v, 1, None, "whole tokens")

    @field_validator("leverage")
    @classmethod
    def _leverage(cls, v):
        for lev, weight in v.items():
            if lev < 1:
                raise ValueError(f"leverage {lev} must be at least 1")
            if weight < 0:
                raise ValueError(f"weight of {lev}x {weight} must not be negative")
        if sum(v.values()) == 0:
            raise ValueError("weights must not all be 0")
        return v


class Warmup(_Strict):
    seconds_per_block: StrictInt = Field(ge=1)
    prices: list[StrictInt] = Field(min_length=1)

    @field_validator("prices")
    @classmethod
    def _prices(cls, v):
        for i, p in enumerate(v):
            if not 1 <= p <= MAX_WHOLE_PRICE:
                raise _At(("warmup", "prices", i), f"{p} must be within 1..{MAX_WHOLE_PRICE} (whole USD)")
        return v


class Keeper(_Strict):
    account: StrictInt = Field(ge=1, lt=TEST_ACCOUNTS)  # TEST:<account>; 0 is the demo's owner
    fallback_account: StrictInt = Field(ge=1, lt=TEST_ACCOUNTS)
    step_timeout: StrictInt = Field(ge=1)  # wall-clock seconds the demo waits for the keeper on one block

    @model_validator(mode="after")
    def _distinct(self):
        if self.account == self.fallback_account:
            raise ValueError(f"account and fallback_account must differ (both {self.account})")
        return self


class Step(_Strict):
    """One point of the crash path: the price at `seconds` after the start."""
    seconds: StrictInt = Field(ge=0)
    price: StrictInt

    @field_validator("price")
    @classmethod
    def _price(cls, v):
        if v <= 0:
            raise ValueError("must be above 0")
        if v > MAX_WHOLE_PRICE:
            raise ValueError(f"must be at most {MAX_WHOLE_PRICE} (whole USD)")
        return v


class Scenario(_Strict):
    name: str = Field(min_length=1, max_length=64)
    seed: StrictInt = Field(ge=0)
    market: str = Field(min_length=1)
    insurance_fund: StrictInt = Field(ge=0)  # whole tokens minted into the fund
    lps: Lps
    traders: Traders
    warmup: Warmup
    block_time: StrictInt = Field(1, ge=1, le=60)  # seconds of chain time per block during the crash
    crash: list[Step] = Field(min_length=1)
    keeper: Keeper

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError("must be letters, digits, '.', '_' or '-' (it names the report folder)")
        return v

    @field_validator("crash", mode="before")
    @classmethod
    def _steps(cls, v):
        """[seconds, price] pairs as written in the YAML -> Step mappings."""
        if not isinstance(v, list):
            return v
        out = []
        for s in v:
            if isinstance(s, (list, tuple)):
                if len(s) != 2:
                    raise _At(("crash", len(out)), f"must be [seconds, price], got {list(s)!r}")
                s = {"seconds": s[0], "price": s[1]}
            out.append(s)
        return out

    @model_validator(mode="after")
    def _path(self):
        for i in range(1, len(self.crash)):
            a, b = self.crash[i - 1].seconds, self.crash[i].seconds
            if b <= a:
                raise _At(("crash", i, "seconds"), f"{b} must be after the step before ({a} s)")
        for i, s in enumerate(self.crash):
            if s.seconds % self.block_time:
                raise _At(("crash", i, "seconds"), f"{s.seconds} must be a multiple of block_time "
                                                   f"({self.block_time} s): each price lands in its own block")
        return self

    def as_dict(self):
        """The YAML shape with integers: crash as [[seconds, price], ...]."""
        d = self.model_dump(exclude_none=True)
        d["crash"] = [[s.seconds, s.price] for s in self.crash]
        return d


# ---- one-line messages

def _where(loc):
    """('traders', 'stop_loss', 'max_leverage') -> 'traders.stop_loss.max_leverage';
    ('crash', 5, 'price') -> 'crash[5]: price'."""
    out = ""
    for key in loc:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += ("." if out else "") + str(key)
    return out


def _model_at(loc):
    """The pydantic model a location inside the scenario points into."""
    model = Scenario
    for key in loc:
        if isinstance(key, int):
            continue
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            return None
        ann = field.annotation
        found = None
        for t in (ann, *get_args(ann)):
            for u in (t, *get_args(t)):
                if isinstance(u, type) and issubclass(u, BaseModel):
                    found = u
        if found is None:
            return None
        model = found
    return model


def _step_label(loc, raw):
    """'crash[5] (t=6 s)' for a location in the crash path."""
    if len(loc) >= 2 and loc[0] == "crash" and isinstance(loc[1], int):
        steps = raw.get("crash") if isinstance(raw, dict) else None
        if isinstance(steps, list) and loc[1] < len(steps):
            s = steps[loc[1]]
            t = s[0] if isinstance(s, (list, tuple)) and len(s) == 2 else (s.get("seconds") if isinstance(s, dict) else None)
            if isinstance(t, int):
                return f"crash[{loc[1]}] (t={t} s)", loc[2:]
        return f"crash[{loc[1]}]", loc[2:]
    return None, loc


def _describe(err, raw):
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        model = _model_at(loc[:-1])
        return validation.unknown_key(_where(loc[:-1]), loc[-1], list(model.model_fields) if model else [])
    step, rest = _step_label(loc, raw)
    if step:
        where = step + (f": {_where(rest)}" if rest else "")
    else:
        where = _where(loc)
    where = where or "the scenario"
    if err["type"] in ("too_short", "too_long") and loc and loc[-1] in PAIRS:
        return f"{where} must be [lowest, highest], got {err.get('input')!r}"
    return validation.explain(err, where)


def _cross_checks(sc, network, config_path):
    """The scenario against the deployment config it will be played on:
    (loc, message) or None."""
    net = cfg.load_config(network, config_path)
    markets = {m.name: m for m in net.markets}
    if sc.market not in markets:
        return ("market",), f"{sc.market!r} is not a market of {cfg._label(Path(config_path) if config_path else cfg.DEFAULT_PATH)} " \
                            f"{network} (markets: {', '.join(markets)})"
    m = markets[sc.market]
    max_lev = 10_000 // m.imf_bps  # 1 / imf
    for lev in sc.traders.leverage:
        if lev > max_lev:
            return ("traders", "leverage"), f"{lev}x is above {sc.market}'s {max_lev}x (imf_bps {m.imf_bps})"
    if sc.traders.margin[0] < m.min_margin:
        return ("traders", "margin"), f"{sc.traders.margin[0]} is below {sc.market}'s min_margin {m.min_margin}"
    return None


def validate(data, source="scenario", network="local", config_path=None):
    """A Scenario from a dict (the YAML's), or ScenarioError (one line).

    `network`, `config_path`: the deployment config the demo will deploy
    (scripts/config.py); the market must be one of its markets."""
    label = cfg._label(source) if isinstance(source, Path) else str(source)
    if isinstance(data, Scenario):
        data = data.as_dict()
    if not isinstance(data, dict):
        raise ScenarioError(f"{label}: must be a mapping of fields (name, seed, market, ...), got {data!r}")
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as e:
        # an unknown key first: a typo also makes the key it misspells missing
        errors = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")
        first = errors[0]
        exc = (first.get("ctx") or {}).get("error")
        if isinstance(exc, _At):
            text = f"{_where(exc.loc)} {exc.msg}"
            step, rest = _step_label(exc.loc, data)
            if step:
                text = f"{step}: {_where(rest)} {exc.msg}" if rest else f"{step} {exc.msg}"
        else:
            text = _describe(first, data)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ScenarioError(f"{label}: {text}{more}") from None
    try:
        bad = _cross_checks(sc, network, config_path)
    except cfg.ConfigError as e:
        raise ScenarioError(f"{label}: the deployment config it runs on: {e}") from None
    if bad:
        loc, msg = bad
        raise ScenarioError(f"{label}: {_where(loc)} {msg}")
    return sc


def read(path):
    """The YAML file as a dict, or ScenarioError (one line)."""
    path = Path(path)
    label = cfg._label(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ScenarioError(f"{label}: cannot read: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ScenarioError(f"{label}: {where}not valid YAML: {getattr(e, 'problem', None) or e}") from None
    return data


def load_scenario(path=DEFAULT_PATH, network="local", config_path=None):
    """The validated Scenario in a YAML file, or ScenarioError (one line)."""
    return validate(read(path), Path(path), network, config_path)


