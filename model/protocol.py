"""The model world: token, feeds, engine, vault and fund, an explicit clock,
and transactional verbs.

    w = World(engine=..., vault=..., fund=..., owner=..., token_decimals=6, now=t0)
    w.call(trader, "request_order", 0, size, margin, acceptable)  # engine / facet verb
    w.call(lp, "vault.deposit", assets, lp)                       # vault verb
    w.view("equity", trader, 0)                                   # view, no state change

A verb that raises Revert restores the world as it was (a reverted tx).
Addresses are checksummed-or-not hex strings compared by their int value,
exactly as the contracts compare them (ADL tie-break).
"""

import copy

from model import insurance_fund, liquidity_vault, perp_admin, perp_engine, perp_exits, perp_orders
from model import positions as P
from model.fixed_point import Revert
from model.mocks import Feed, Token

_ENGINE_VERBS = {n: getattr(perp_engine, n) for n in ("deposit", "withdraw", "add_margin")}
_ENGINE_VERBS.update({n: getattr(perp_admin, n) for n in (
    "transfer_ownership", "accept_ownership",
    "initialize", "add_market", "set_market_params", "set_oracle", "set_sequencer_feed", "set_order_expiry", "set_borrow_rate", "set_max_profit", "set_keeper_reward", "set_pauser", "pause", "unpause", "set_tp_sl")})
_ENGINE_VERBS.update({n: getattr(perp_exits, n) for n in (
    "execute_tp_sl", "liquidate", "deleverage")})
_ENGINE_VERBS.update({n: getattr(perp_orders, n) for n in ("request_order", "execute_order", "execute_order_inner", "cancel_order")})
# pay and cover are engine-only: called directly they revert, as on chain.
_VAULT_VERBS = {n: getattr(liquidity_vault, n) for n in (
    "requestDeposit", "requestRedeem", "settle", "setOperator", "set_settle_fee", "transfer_ownership",
    "claimCancelRedeemRequest",
    "deposit", "mint", "withdraw", "redeem", "pay")}
_FUND_VERBS = {n: getattr(insurance_fund, n) for n in (
    "transfer_ownership", "accept_ownership", "set_floor", "withdraw_surplus", "cover")}


_IMMUTABLE = (int, str, bool, type(None), bytes)


def clone(x):
    """A deep copy of model state: dicts, lists, tuples and dataclass
    instances are copied, ints, strings, bools and bytes shared (they are
    immutable). Anything else is a model type this function does not know,
    and copy.deepcopy takes it. The model state is a tree, so no memo."""
    t = type(x)
    if t in _IMMUTABLE:
        return x
    if t is dict:
        return {k: v if type(v) in _IMMUTABLE else clone(v) for k, v in x.items()}
    if t is list:
        return [v if type(v) in _IMMUTABLE else clone(v) for v in x]
    if t is tuple:
        return tuple(v if type(v) in _IMMUTABLE else clone(v) for v in x)
    if hasattr(t, "__dataclass_fields__"):
        new = object.__new__(t)
        new.__dict__ = {k: v if type(v) in _IMMUTABLE else clone(v) for k, v in x.__dict__.items()}
        return new
    return copy.deepcopy(x)


def resolve_verb(verb):
    """The model function behind a verb name: engine and exits verbs by
    name, vault verbs as 'vault.x', insurance-fund verbs as 'fund.x'."""
    if verb.startswith("vault."):
        return _VAULT_VERBS[verb[6:]]
    if verb.startswith("fund."):
        return _FUND_VERBS[verb[5:]]
    return _ENGINE_VERBS[verb]


class World:
    def __init__(self, *, engine, vault, fund, owner, token_decimals=6, now=0, token_address=None):
        self.engine_address = engine
        self.vault_address = vault
        self.fund_address = fund
        self.token_address = token_address
        self.e = P.EngineState(scale=10 ** (36 - token_decimals), owner=owner)
        self.token = Token(decimals=token_decimals)
        self.v = liquidity_vault.VaultState(owner=owner)
        self.feeds = {}
        self.fund_owner = owner
        self.fund_floor = 0
        self.fund_pending_owner = "0x" + "00" * 20
        self.now = now
        self.sender = None
        self.caller = None
        self.events = []

    # ------------------------------------------------------------ plumbing
    def log(self, name, **fields):
        self.events.append((name, fields))

    def vault_pay(self, amount):
        caller, self.caller = self.caller, self.engine_address
        try:
            liquidity_vault.pay(self, amount)
        finally:
            self.caller = caller

    def fund_cover(self, receiver, amount):
        caller, self.caller = self.caller, self.engine_address
        try:
            insurance_fund.cover(self, receiver, amount)
        finally:
            self.caller = caller

    def _snapshot(self):
        """What a reverted verb restores: every piece of mutable state, cloned.
        (copy.deepcopy did the same at 1 ms a call; clone() is ~20x faster.)"""
        return clone((self.e, self.token, self.v, self.feeds, self.fund_floor, self.fund_owner,
                      self.fund_pending_owner)), len(self.events)

    def _restore(self, snap):
        (self.e, self.token, self.v, self.feeds, self.fund_floor, self.fund_owner, self.fund_pending_owner), n = snap
        del self.events[n:]

    # ------------------------------------------------------------ verbs
    def call(self, sender, verb, *args, now=None, atomic=True):
        """Run a state-changing verb as `sender` at time `now` (default: the
        world's clock). Raises Revert, leaving the world unchanged.

        atomic=False skips the snapshot that makes a revert leave the world
        unchanged: only for a caller that already knows the verb succeeded on
        chain and fails on a model revert anyway (the differential machine,
        where the snapshot was half of the model's cost)."""
        if now is not None:
            self.now = now
        fn = resolve_verb(verb)
        snap = self._snapshot() if atomic else None
        self.sender = self.caller = sender
        try:
            return fn(self, *args)
        except Revert:
            if snap is not None:
                self._restore(snap)
            raise
        except (ZeroDivisionError, ValueError, OverflowError) as exc:  # pragma: no cover - a model bug
            if snap is not None:
                self._restore(snap)
            raise Revert(None) from exc

    def view(self, name, *args):
        """Run a view (engine views by name; vault views as 'vault.x')."""
        if name.startswith("vault."):
            return getattr(liquidity_vault, name[6:])(self, *args)
        return getattr(perp_engine, name)(self, *args)

    # ------------------------------------------------------------ mocks
    def add_feed(self, address, decimals, answer):
        f = Feed(decimals=decimals)
        f.set_answer(answer, self.now)
        self.feeds[address] = f
        return f

    def set_answer(self, feed, answer, now=None):
        if now is not None:
            self.now = now
        self.feeds[feed].set_answer(answer, self.now)

    def mint(self, to, amount):
        self.token.mint(to, amount)

    def approve(self, owner, spender, amount):
        self.token.approve(owner, spender, amount)
