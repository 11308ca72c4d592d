"""Seeded synthetic books: who holds what when the path starts.

A `BookSpec` says how a book is drawn (every field is in whole tokens,
percent or basis points, integers only); `draw_book` turns it and a seed
into a list of `Account`s, the same list on every machine (Python's
`random.Random` with an integer seed is platform-independent).

The engine holds at most `MAX_SIDE_POSITIONS` (1,000) positions per market
side. A book with more accounts than one side holds is spread over several
markets, each a copy of the base market following the same price path, with
at most `per_side` accounts on each side of each market.
"""

import random
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from model.positions import MAX_SIDE_POSITIONS
from risk.errors import LabError

# The demo's leverage mix (scenarios/crash.yaml): leverage -> weight.
DEFAULT_LEVERAGE = {2: 8, 3: 7, 5: 12, 10: 18, 20: 20, 50: 17, 100: 18}


class BookSpec(BaseModel):
    """How a book is drawn. Defaults follow scenarios/crash.yaml."""

    model_config = ConfigDict(extra="forbid")

    accounts: int = Field(1_000, description="traders, one position each")
    long_percent: int = Field(60, ge=0, le=100, description="crowding: the share of longs")
    leverage: Dict[int, int] = Field(default_factory=lambda: dict(DEFAULT_LEVERAGE),
                                     description="leverage (2..100) -> weight")
    margin: Tuple[int, int] = Field((200, 5_000), description="margin per position, whole tokens, drawn uniformly")
    entry_spread_bps: int = Field(150, ge=0, le=5_000,
                                  description="entries spread over +-this around the path's first price")
    entry_rounds: int = Field(8, ge=1, le=64, description="price rounds the book opens over")
    stop_loss_percent: int = Field(30, ge=0, le=100, description="share of positions with a stop-loss")
    stop_way: Tuple[int, int] = Field((30, 80), description="the stop sits this % of the way from entry to liquidation")
    take_profit_percent: int = Field(25, ge=0, le=100, description="share of positions with a take-profit")
    take_profit_bps: Tuple[int, int] = Field((400, 1_500), description="take-profit this far beyond entry, bps")
    lp_deposit: Optional[int] = Field(None, ge=1, description="LP depth: tokens in the vault (None: lp_depth_percent)")
    lp_depth_percent: int = Field(100, ge=1, le=10_000,
                                  description="without lp_deposit: the vault holds this % of the book's notional")
    insurance_fund: int = Field(20_000, ge=0, description="tokens in the insurance fund at the start")
    per_side: int = Field(MAX_SIDE_POSITIONS, ge=1, le=MAX_SIDE_POSITIONS,
                          description="accounts per market side (the engine's cap is 1,000)")

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, v):
        if v < 1:
            raise ValueError("an empty book: accounts must be at least 1")
        return v

    @field_validator("leverage")
    @classmethod
    def _leverage(cls, v):
        if not v or any(not 1 <= k <= 100 or w < 0 for k, w in v.items()) or sum(v.values()) == 0:
            raise ValueError("leverage must map 1..100 to non-negative weights, not all zero")
        return v

    @model_validator(mode="after")
    def _ranges(self):
        for name in ("margin", "stop_way", "take_profit_bps"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be [low, high] with 0 < low <= high, got [{lo}, {hi}]")
        if self.stop_way[1] >= 100:
            raise ValueError("stop_way must stay below 100 (a stop at the liquidation price is refused)")
        return self


@dataclass
class Account:
    address: str
    market: int
    is_long: bool
    leverage: int
    margin: int  # whole tokens
    round: int  # the entry round it opens in
    stop_way: int = 0  # % of the way to liquidation; 0: no stop
    take_profit_bps: int = 0  # 0: no take-profit


def address(n):
    return "0x" + format(n, "040x")


TRADER_BASE = 0x10_0000


def markets_needed(spec):
    """Markets a book needs: each side of each market holds `per_side`."""
    longs = spec.accounts * spec.long_percent // 100
    shorts = spec.accounts - longs
    return max(1, -(-max(longs, shorts) // spec.per_side))


def draw_book(spec, seed):
    """The accounts of a book, in address order. Longs and shorts are dealt
    round-robin to the markets, so every market holds the same mix."""
    if spec.accounts < 1:
        raise LabError("book: an empty book (accounts must be at least 1)")
    rng = random.Random(seed)
    levs = sorted(spec.leverage)
    weights = [spec.leverage[k] for k in levs]
    n_long = spec.accounts * spec.long_percent // 100
    sides = [True] * n_long + [False] * (spec.accounts - n_long)
    rng.shuffle(sides)
    n_markets = markets_needed(spec)
    seen = {True: 0, False: 0}
    out: List[Account] = []
    for i, is_long in enumerate(sides):
        mid = seen[is_long] % n_markets
        seen[is_long] += 1
        lev = rng.choices(levs, weights)[0]
        a = Account(address(TRADER_BASE + i), mid, is_long, lev, rng.randint(*spec.margin),
                    rng.randrange(spec.entry_rounds))
        if rng.randrange(100) < spec.stop_loss_percent:
            a.stop_way = rng.randint(*spec.stop_way)
        if rng.randrange(100) < spec.take_profit_percent:
            a.take_profit_bps = rng.randint(*spec.take_profit_bps)
        out.append(a)
    return out


def entry_prices(spec, first_answer, seed):
    """The answers of the entry rounds: the first at the path's first price,
    the others spread uniformly within +-entry_spread_bps of it."""
    rng = random.Random(seed * 7919 + 1)
    out = [first_answer]
    for _ in range(spec.entry_rounds - 1):
        bps = rng.randint(-spec.entry_spread_bps, spec.entry_spread_bps)
        out.append(first_answer * (10_000 + bps) // 10_000)
    return out


def book_notional(accounts):
    """The book's notional at entry, whole tokens: margin x leverage summed."""
    return sum(a.margin * a.leverage for a in accounts)
