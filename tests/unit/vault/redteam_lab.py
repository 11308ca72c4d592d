"""An in-process laboratory for the red-team tests of the LP side
(tests/unit/vault/test_redteam_lp.py): the real contracts, compiled from
contracts/ by titanoboa's vyper 0.4.3 and deployed in revm (pyrevm) in
scripts/deploy.py's order by tests/stateful/backends.py's RevmBackend, with
one transaction per block at a clock the test moves. Only the token (a
faucet) and the feeds (movable prices) are mocks, as on every devnet.

Lab.tx(who, "vault", "settle()") sends a transaction and returns its
output, or raises Reverted(reason); Lab.view reads a view. Amounts are in
token units (USDC = 10**6); prices in whole dollars."""

import itertools

from eth_abi import decode, encode

from scripts import config as cfg
from tests.stateful.backends import _EXECUTE, _SCHEDULE, RevmBackend, decode_revert, selector

_SALTS = itertools.count(1)  # one timelock operation per owner call

USDC = 10**6
WAD = 10**18
OFFSET = 10**3
BTC, ETH = 0, 1
MAX_ADL = 8


class Reverted(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _split(types):
    out, depth, cur = [], 0, ""
    for ch in types:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        out.append(cur)
    return out


def config(funding=False, max_profit_bps=5000, min_keeper_reward_units=0, min_notional_units=0):
    """The devnet's configuration, funding off unless asked (values do not
    move between a read and the next block)."""
    conf = cfg.load("local")
    conf["max_profit_bps"] = max_profit_bps
    conf["min_keeper_reward_units"] = min_keeper_reward_units
    conf["min_notional_units"] = min_notional_units
    if not funding:
        for m in conf["markets"]:
            m["funding_k_bps_per_hour"] = 0
            m["max_funding_bps_per_hour"] = 0
    return conf


class Lab:
    ROLES = ["owner", "keeper", "lp", "lp2", "victim", "attacker", "attacker2", "trader", "trader2", "stranger"]

    def __init__(self, roles=(), **conf):
        self.b = RevmBackend(self.ROLES + list(roles), config=config(**conf))
        self.a = dict(self.b.accounts)
        self.addr = dict(self.b.addresses)
        self.prices = [m["initial_price"] for m in config(**conf)["markets"]]

    # ------------------------------------------------------------ plumbing
    @property
    def now(self):
        return self.b._now

    def _who(self, who):
        return self.a.get(who, who)

    def _to(self, role):
        return self.addr.get(role, role)

    def tx(self, who, role, sig, *args, dt=1, out=None):
        """One transaction in a new block `dt` seconds later."""
        types = _split(sig[sig.index("(") + 1: -1])
        self.b._number += 1
        self.b._now += dt
        self.b._set_block()
        data = selector(sig) + encode(types, list(args))
        to = self._to(role)
        if who == "owner" and role in ("engine", "vault", "fund") and self._owner_verb(role, sig):
            # the owner is the timelock (delay 0 here): schedule, then execute
            salt = next(_SALTS).to_bytes(32, "big")
            op = ["address", "uint256", "bytes", "bytes32", "bytes32"], [to, 0, data, bytes(32), salt]
            ok, res = self.b._call(self._who(who), self.addr["timelock"],
                                   _SCHEDULE + encode(op[0] + ["uint256"], op[1] + [0]))
            assert ok, f"the timelock refused to schedule {sig}: {decode_revert(res)}"
            to, data = self.addr["timelock"], _EXECUTE + encode(*op)
        ok, data = self.b._call(self._who(who), to, data)
        if not ok:
            raise Reverted(decode_revert(data) if not data.startswith(b"halt") else data.decode())
        return decode(out, data) if out else data

    @staticmethod
    def _owner_verb(role, sig):
        from scripts.governance import OWNER_VERBS

        name = sig[:sig.index("(")]
        return (name if role == "engine" else f"{role}.{name}") in OWNER_VERBS

    def reason(self, who, role, sig, *args, dt=1):
        """The revert reason of a transaction that must revert (the state is
        unchanged: a reverted message call commits nothing)."""
        try:
            self.tx(who, role, sig, *args, dt=dt)
        except Reverted as exc:
            return exc.reason
        raise AssertionError(f"{sig} did not revert")

    def view(self, role, sig, *args, out=("uint256",)):
        types = _split(sig[sig.index("(") + 1: -1])
        ok, data = self.b._call(self.a["owner"], self._to(role), selector(sig) + encode(types, list(args)))
        if not ok:
            raise Reverted(decode_revert(data))
        got = decode(list(out), data)
        return got[0] if len(got) == 1 else got

    def advance(self, seconds):
        self.b._now += seconds

    # ------------------------------------------------------------ tokens
    def bal(self, who):
        return self.view("token", "balanceOf(address)", self._who(who))

    def shares(self, who):
        return self.view("vault", "balanceOf(address)", self._who(who))

    def fund(self, who, amount):
        self.tx(who, "token", "mint(address,uint256)", self._who(who), amount)
        self.tx(who, "token", "approve(address,uint256)", self.addr["vault"], 2**256 - 1)
        self.tx(who, "token", "approve(address,uint256)", self.addr["engine"], 2**256 - 1)

    def donate(self, who, to, amount):
        self.tx(who, "token", "transfer(address,uint256)", self._to(to), amount)

    # ------------------------------------------------------------ feeds
    def round(self, prices=None, dt=1):
        """A new round on every feed, in a new block `dt` seconds later;
        `prices` {market: whole dollars} moves some."""
        for mid, p in (prices or {}).items():
            self.prices[mid] = p
        self.b._now += dt - 1
        for mid, p in enumerate(self.prices):
            self.tx("owner", f"feed{mid}", "set_answer(int256)", p * 10**8, dt=1 if mid == 0 else 0)

    # ------------------------------------------------------------ vault
    def v(self, sig, *args, out=("uint256",)):
        return self.view("vault", sig, *args, out=out)

    def epoch(self, e):
        return self.v("get_epoch(uint256)", e, out=("(uint256,uint256,uint256,uint256,uint256,uint256,uint256)",))

    def request_deposit(self, who, assets, controller=None, dt=1):
        self.tx(who, "vault", "requestDeposit(uint256,address,address)", assets, self._who(controller or who),
                self._who(who), dt=dt)

    def request_redeem(self, who, shares, controller=None, dt=1):
        self.tx(who, "vault", "requestRedeem(uint256,address,address)", shares, self._who(controller or who),
                self._who(who), dt=dt)

    def settle(self, who="keeper"):
        return self.tx(who, "vault", "settle()", out=["uint256"])[0]

    def claim_all(self, who):
        """Every claim of `who`: deposit shares, redemption assets, shares given back."""
        w = self._who(who)
        if self.v("maxMint(address)", w):
            self.tx(who, "vault", "mint(uint256,address)", self.v("maxMint(address)", w), w)
        if self.v("maxRedeem(address)", w):
            self.tx(who, "vault", "redeem(uint256,address,address)", self.v("maxRedeem(address)", w), w, w)
        if self.v("claimableCancelRedeemRequest(uint256,address)", 0, w):
            self.tx(who, "vault", "claimCancelRedeemRequest(uint256,address,address)", 0, w, w)

    def lp_in(self, who, assets, settler="keeper"):
        """Fund, request, a later round, settle, claim: the shares got."""
        self.fund(who, assets)
        before = self.shares(who)
        self.request_deposit(who, assets)
        self.round()
        self.settle(settler)
        self.claim_all(who)
        return self.shares(who) - before

    def lp_out(self, who, shares, settler="keeper"):
        before = self.bal(who)
        self.request_redeem(who, shares)
        self.round()
        self.settle(settler)
        self.claim_all(who)
        return self.bal(who) - before

    # ------------------------------------------------------------ engine
    def e(self, sig, *args, out=("uint256",)):
        return self.view("engine", sig, *args, out=out)

    def position(self, who, mid):
        return self.e("get_position(address,uint256)", self._who(who), mid,
                      out=("(int256,uint256,uint256,int256,uint256,uint256)",))

    def free(self, who):
        return self.e("free_collateral(address)", self._who(who))

    def order(self, who, mid, size, margin, executor="keeper"):
        """request_order, a later round at the current prices, execute_order:
        raises AssertionError with the position unchanged if it was cancelled."""
        size_before = self.position(who, mid)[0]
        accept = 2 * self.prices[mid] * WAD if size > 0 else 0  # a buy at up to twice the price
        oid = self.tx(who, "engine", "request_order(uint256,int256,int256,uint256)", mid, size, margin, accept,
                      out=["uint256"])[0]
        self.round()
        self.tx(executor, "engine", "execute_order(uint256)", oid)
        return self.position(who, mid)[0] != size_before

    def open(self, who, mid, size, margin, deposit=None, executor="keeper"):
        dep = deposit if deposit is not None else margin + margin // 2 + 10 * USDC
        if dep:
            self.tx("owner", "token", "mint(address,uint256)", self._who(who), dep)
            self.tx(who, "token", "approve(address,uint256)", self.addr["engine"], 2**256 - 1)
            self.tx(who, "engine", "deposit(uint256)", dep)
        return self.order(who, mid, size, margin, executor)

    def close(self, who, mid, executor="keeper"):
        size = self.position(who, mid)[0]
        return self.order(who, mid, -size, 0, executor)

    def withdraw_all(self, who):
        f = self.free(who)
        if f:
            self.tx(who, "engine", "withdraw(uint256)", f)

    def valuation(self):
        return dict(cash=self.v("cash()"), exit=self.v("totalAssets()"), entry=self.v("entry_assets()"),
                    free=self.v("free_cash()"), reserve=self.e("traders_reserve()"),
                    gain=self.e("traders_gain()"), claim=self.e("traders_claim()", out=("int256",)),
                    supply=self.v("totalSupply()"))


def restoring(base):
    """A test's view of a module's Lab: the state (and the prices the Lab
    remembers) restored after the test."""
    snap = base.b.snapshot()
    prices = list(base.prices)
    yield base
    base.b.restore(snap)
    base.prices = prices
