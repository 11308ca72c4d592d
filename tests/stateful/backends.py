"""Where the state machine's contracts run: anvil (through ape) or titanoboa.

Both backends take the same calls, as ABI calldata, and give back the same
things, so the machine in machine.py is written once:

    backend.addresses      role -> address: engine, exits, orders, admin, vault, fund, token, lens, feed0, feed1
    backend.accounts       role -> address: owner, pauser, keeper, lp, lp2, trader0..trader24
    backend.send(sender, verb, args, t)  -> reason: None when the call succeeded,
                           else the revert string ("" for a revert without one);
                           the call is mined with block.timestamp == t (checked
                           through every comparison: last_funding_time and the
                           feeds' updated_at are stored values)
    backend.read(accounts, touched, valuation, orders) -> (stored, views):
                           two dicts keyed as in machine.model_state (the
                           keys are listed below); `orders` is the order ids
                           to read (the model's pending ones and those the
                           step named)
    backend.snapshot() / backend.restore(snap)   around every example

AnvilBackend deploys with scripts/deploy.py through ape, then talks raw
JSON-RPC to ape's anvil: one HTTP round trip a transaction
(eth_sendTransactionSync) and one eth_call to BackstopLens for the whole
protocol, views included.
BoaBackend compiles the same .vy sources with titanoboa and runs py-evm in
process; it reads storage slots directly (py-evm interprets the lens's large
memory copies at about 0.4 s a call) and reads views only for the positions
a step touched.

State keys (addresses lower-case hex):
    stored: ("totals",) (market_count, paused, owner, pauser)
            ("bal", holder) token balance, for every account and engine, vault, fund
            ("vault.supply",)  ("free", a)  ("shares", a)
            ("params", mid) 13-tuple  ("state", mid) 9-tuple  ("pending", mid) the 4 job slots of the ADL queue, 7-tuples
            ("feed", mid) latestRoundData  ("members", mid, side) side set in order
            ("pos", a, mid) (size, entry, margin, funding_index, tp, sl)
            ("orders",) (order_count, order_expiry)
            ("order", id) (account, market_id, size_delta, margin_delta,
                           acceptable_price, requested_at, reduce_only,
                           trading_fee, execution_fee, expires_at), ZERO_ORDER
                           when none
            ("tp_sl_at", a, mid) the block time of the last set_tp_sl, when
                           not 0 (in process only: no view reads it)
            ("last order", a, mid) (id, expires_at) of the account's last
                           order in the market, when any (in process only)
            ("solvency",) (max_profit, total_cost, min_keeper_reward, min_notional)
            ("bal", "escrow") the vault escrow's token balance
            ("vault.own",) the vault's own share balance (requested
                           redemptions, unclaimed deposits)
            ("vault.epochs",) (epoch, closing, settle_fee)
            ("vault.epoch", id) get_epoch(id), for the open and the closing epoch
            ("lp", a) for the roles lp and lp2: (pendingDepositRequest,
                           claimableDepositRequest, maxMint, pendingRedeemRequest,
                           claimableRedeemRequest, maxWithdraw,
                           claimableCancelRedeemRequest)
    views:  ("valuation",) (vault.totalAssets, vault.free_cash, engine.traders_claim,
                            engine.traders_gain, engine.traders_reserve, vault.entry_assets)
            ("views", a, mid) (equity, is_liquidatable, liquidation_price,
                               bankruptcy_price, adl_score, funding_owed), open positions
            ("escrow", id) get_order(id).escrow (anvil: every order read)
"""

import hashlib
import re
from functools import cache, partial
from pathlib import Path

from eth_abi import decode, encode
from eth_utils import keccak

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
GAS = 30_000_000

_P = "(address," + ",".join(["uint256"] * 12) + ")"
# verb -> (contract role, signature); the machine's verbs, as the model names them.
SIGNATURES = {
    "deposit": ("engine", "deposit(uint256)"),
    "withdraw": ("engine", "withdraw(uint256)"),
    "request_order": ("engine", "request_order(uint256,int256,int256,uint256)"),
    "execute_order": ("engine", "execute_order(uint256)"),
    "cancel_order": ("engine", "cancel_order(uint256)"),
    "set_order_expiry": ("engine", "set_order_expiry(uint256)"),
    "set_max_profit": ("engine", "set_max_profit(uint256)"),
    "set_borrow_rate": ("engine", "set_borrow_rate(uint256,uint256)"),
    "set_keeper_reward": ("engine", "set_keeper_reward(uint256,uint256)"),
    "add_margin": ("engine", "add_margin(uint256,uint256)"),
    "set_tp_sl": ("engine", "set_tp_sl(uint256,uint256,uint256)"),
    "execute_tp_sl": ("engine", "execute_tp_sl(address,uint256)"),
    "liquidate": ("engine", "liquidate(address,uint256,address[])"),
    "deleverage": ("engine", "deleverage(uint256,address[])"),
    "pause": ("engine", "pause()"),
    "unpause": ("engine", "unpause()"),
    "set_pauser": ("engine", "set_pauser(address)"),
    "set_market_params": ("engine", f"set_market_params(uint256,{_P})"),
    # the vault's epochs (ERC-7540): requests, settlement, claims
    "vault.requestDeposit": ("vault", "requestDeposit(uint256,address,address)"),
    "vault.requestRedeem": ("vault", "requestRedeem(uint256,address,address)"),
    "vault.settle": ("vault", "settle()"),
    "vault.setOperator": ("vault", "setOperator(address,bool)"),
    "vault.set_settle_fee": ("vault", "set_settle_fee(uint256)"),
    "vault.claimCancelRedeemRequest": ("vault", "claimCancelRedeemRequest(uint256,address,address)"),
    "vault.deposit": ("vault", "deposit(uint256,address)"),
    "vault.mint": ("vault", "mint(uint256,address)"),
    "vault.withdraw": ("vault", "withdraw(uint256,address,address)"),
    "vault.redeem": ("vault", "redeem(uint256,address,address)"),
    "fund.withdraw_surplus": ("fund", "withdraw_surplus(address,uint256)"),
    "token.mint": ("token", "mint(address,uint256)"),
    "token.approve": ("token", "approve(address,uint256)"),
    "feed0.set_answer": ("feed0", "set_answer(int256)"),
    "feed1.set_answer": ("feed1", "set_answer(int256)"),
    # oracle hygiene: the fallback feed, the sequencer-uptime mock, the owner's verbs
    "fallback0.set_answer": ("fallback0", "set_answer(int256)"),
    "sequencer.set_status": ("sequencer", "set_status(int256)"),
    "sequencer.set_round_data": ("sequencer", "set_round_data(int256,uint256)"),
    "feed0.set_reverts": ("feed0", "set_reverts(bool)"),
    "set_oracle": ("engine", "set_oracle(uint256,(uint256,uint256,uint256,address,uint256))"),
    "set_sequencer_feed": ("engine", "set_sequencer_feed(address,uint256)"),
}


def extra_feeds(addresses):
    """The mock feeds besides each market's primary: fallback<i> and the
    sequencer-uptime feed, by role, in a fixed order."""
    return sorted(k for k in addresses if k.startswith("fallback") or k == "sequencer")
_ENCODERS = {}
for _verb, (_role, _sig) in SIGNATURES.items():
    _types = _sig[_sig.index("(") + 1: -1]
    # split the top-level argument list (the params tuple holds commas)
    _args, _depth, _cur = [], 0, ""
    for ch in _types:
        if ch == "," and _depth == 0:
            _args.append(_cur)
            _cur = ""
            continue
        _depth += ch == "("
        _depth -= ch == ")"
        _cur += ch
    if _cur:
        _args.append(_cur)
    _ENCODERS[_verb] = (_role, keccak(text=_sig)[:4], _args)


def _word(t, v):
    """One static ABI word (uint256, int256, address, bool), checked as
    strictly as eth_abi would."""
    if t == "address":
        raw = bytes.fromhex(v[2:]) if isinstance(v, str) else bytes(v)
        assert len(raw) == 20, f"not an address: {v!r}"
        return bytes(12) + raw
    if t == "uint256":
        assert 0 <= v < 2**256, f"uint256 out of range: {v}"
        return v.to_bytes(32, "big")
    if t == "int256":
        assert -(2**255) <= v < 2**255, f"int256 out of range: {v}"
        return (v % 2**256).to_bytes(32, "big")
    if t == "bool":
        return (1 if v else 0).to_bytes(32, "big")
    raise KeyError(t)


def fast_encode(types, args):
    """ABI encoding of the machine's argument shapes (static words, one
    static tuple, address[]), without eth_abi's per-value regex checks,
    which cost more than a revm transaction. Anything else goes to eth_abi;
    tests/stateful/test_backends.py checks the two agree."""
    try:
        heads, tails = [], []
        n_head = sum(32 * (t.count(",") + 1) if t.startswith("(") else 32 for t in types)
        for t, v in zip(types, args, strict=True):
            if t.endswith("[]"):
                inner = t[:-2]
                heads.append((n_head + sum(len(x) for x in tails)).to_bytes(32, "big"))
                tails.append(len(v).to_bytes(32, "big") + b"".join(_word(inner, x) for x in v))
            elif t.startswith("("):
                inner = t[1:-1].split(",")
                assert "(" not in t[1:], "nested tuple"
                heads.append(b"".join(_word(it, x) for it, x in zip(inner, v, strict=True)))
            else:
                heads.append(_word(t, v))
        return b"".join(heads) + b"".join(tails)
    except (KeyError, AssertionError):
        return encode(types, list(args))


def calldata(verb, args):
    """(contract role, calldata bytes) for a machine verb."""
    role, selector, types = _ENCODERS[verb]
    return role, selector + fast_encode(types, args)


_SCHEDULE = keccak(text="schedule(address,uint256,bytes,bytes32,bytes32,uint256)")[:4]
_EXECUTE = keccak(text="execute(address,uint256,bytes,bytes32,bytes32)")[:4]
_salts = iter(range(1, 2**64))


def governed_send(backend, sender, verb, args, t):
    """backend._send(sender, to, data, t, verb) of one machine verb; an owner
    verb (scripts/governance.OWNER_VERBS) from the machine's owner, the
    timelock's proposer and executor, is scheduled (delay 0) and executed
    through the timelock, as scripts/governance.govern does with ape. The
    execution's revert reason is the target's own (snekmate bubbles it)."""
    from scripts.governance import OWNER_VERBS

    role, data = calldata(verb, args)
    to = backend.addresses[role]
    if verb not in OWNER_VERBS or sender != backend.accounts["owner"]:
        return backend._send(sender, to, data, t, verb)
    salt = next(_salts).to_bytes(32, "big")
    op = ["address", "uint256", "bytes", "bytes32", "bytes32"], [to, 0, data, bytes(32), salt]
    scheduled = backend._send(sender, backend.addresses["timelock"],
                              _SCHEDULE + encode(op[0] + ["uint256"], op[1] + [0]), t, verb)
    assert scheduled is None, f"{verb}: the timelock refused to schedule it: {scheduled!r}"
    return backend._send(sender, backend.addresses["timelock"], _EXECUTE + encode(*op), t, verb)


def decode_revert(output):
    """A revert's reason string; "" for a revert without one (Vyper's checked
    arithmetic), the raw hex for anything else."""
    if not output:
        return ""
    if output[:4] == bytes.fromhex("08c379a0"):
        return decode(["string"], output[4:])[0]
    return "0x" + output.hex()


def _l(a):
    return a.lower()


def _signed(x):
    return x - 2**256 if x >= 2**255 else x


ZERO_ADDRESS = "0x" + "00" * 20
ZERO_ORDER = (ZERO_ADDRESS, 0, 0, 0, 0, 0, 0, 0, 0, 0)
_MASK160, _MASK128 = 2**160 - 1, 2**128 - 1
_MAX_SIZE, _MAX_ORDER_MARGIN, _MAX_ORDER_TIME = 2**120, 2**127, 2**35


def unpack_order(s0, s1, s2, expires_at):
    """An order's three slots (positions._store_order's packing) and its
    deadline (from its account's last-order word, as _load_order reads
    it) as the ("order", id) tuple; ZERO_ORDER when all three slots are 0
    (executed, cancelled or never requested). A slot left behind shows."""
    if s0 == s1 == s2 == 0:
        return ZERO_ORDER
    return ("0x%040x" % (s0 & _MASK160), (s0 >> 195) & 63, (s1 & _MASK128) - _MAX_SIZE,
            (s2 & _MASK128) - _MAX_ORDER_MARGIN, s1 >> 128, (s0 >> 160) & (_MAX_ORDER_TIME - 1), (s0 >> 201) & 1,
            s0 >> 202, s2 >> 128, expires_at)


GET_ORDER = keccak(text="get_order(uint256)")[:4]


# ------------------------------------------------------------------ lens decoding

_T = ("(uint256,bool,address,address,address,address,address,uint256,uint256,uint256,uint256,uint256,uint256,int256,"
      "uint256,uint256,uint256,uint256,uint256,uint256,uint256)")
_MV = (f"({_P},(uint256,uint256,uint256,uint256,int256,int256,uint256,int256,uint256),"
       "(uint256,uint256,int256,uint256,address,uint256,uint256)[4],(uint80,int256,uint256,uint256,uint80),uint256,"
       "uint256)")
_AV = "(address,uint256,uint256,uint256)"
_PV = "(address,uint256,(int256,uint256,uint256,int256,uint256,uint256),int256,bool,uint256,uint256,uint256,int256)"
SNAPSHOT_SELECTOR = keccak(text="snapshot(address,address[],bool)")[:4]
SNAPSHOT_TYPES = [_T, _MV + "[]", _AV + "[]", _PV + "[]", "address[]"]


def decode_snapshot(raw):
    """BackstopLens.snapshot's return data, decoded by hand: every element is
    static, so each array is a length word and fixed-size rows. Five times
    faster than eth_abi on this shape (which checks it agrees, once, in
    AnvilBackend.__init__)."""
    n_words = len(raw) // 32
    w = [int.from_bytes(raw[32 * i: 32 * i + 32], "big") for i in range(n_words)]

    def s(x):
        return x - 2**256 if x >= 2**255 else x

    def a(x):
        return "0x%040x" % x

    def rows(head_word, width):
        start = w[head_word] // 32
        n = w[start]
        return [w[start + 1 + width * i: start + 1 + width * (i + 1)] for i in range(n)]

    t = w[0:21]
    totals = (t[0], bool(t[1]), a(t[2]), a(t[3]), a(t[4]), a(t[5]), a(t[6]), *t[7:13], s(t[13]), *t[14:21])
    markets = []
    for r in rows(21, 57):
        params = (a(r[0]), *r[1:13])
        state = (*r[13:17], s(r[17]), s(r[18]), r[19], s(r[20]), r[21])
        pending = tuple((j[0], j[1], s(j[2]), j[3], a(j[4]), j[5], j[6]) for j in (r[22 + 7 * i: 29 + 7 * i]
                                                                            for i in range(4)))
        feed = (r[50], s(r[51]), r[52], r[53], r[54])
        markets.append((params, state, pending, feed, r[55], r[56]))
    accts = [(a(r[0]), r[1], r[2], r[3]) for r in rows(22, 4)]
    poss = [(a(r[0]), r[1], (s(r[2]), r[3], r[4], s(r[5]), r[6], r[7]), s(r[8]), bool(r[9]), r[10], r[11], r[12],
             s(r[13])) for r in rows(23, 14)]
    members = [a(x[0]) for x in rows(24, 1)]
    return totals, markets, accts, poss, members


def state_from_lens(raw):
    """(stored, views) from BackstopLens.snapshot's return data."""
    totals, markets, accts, poss, members = decode_snapshot(raw)
    stored, views = {}, {}
    (n, paused, owner, pauser, _token, vault, fund, eng_bal, vault_cash, fund_bal,
     supply, total_assets, free_cash, claim, max_profit, total_cost, reserve, gain, entry, min_reward,
     min_notional) = totals
    stored[("totals",)] = (n, paused, _l(owner), _l(pauser))
    stored[("solvency",)] = (max_profit, total_cost, min_reward, min_notional)
    stored[("bal", "vault")] = vault_cash
    stored[("bal", "fund")] = fund_bal
    stored[("bal", "engine")] = eng_bal
    stored[("vault.supply",)] = supply
    views[("valuation",)] = (total_assets, free_cash, claim, gain, reserve, entry)
    for a, bal, free, shares in accts:
        a = _l(a)
        stored[("bal", a)] = bal
        stored[("free", a)] = free
        stored[("shares", a)] = shares
    k = 0
    for mid, (params, state, pending, feed, n_long, n_short) in enumerate(markets):
        stored[("params", mid)] = (_l(params[0]), *params[1:])
        stored[("state", mid)] = tuple(state)
        stored[("pending", mid)] = tuple((*j[:4], _l(j[4]), *j[5:]) for j in pending)
        stored[("feed", mid)] = tuple(feed)
        stored[("members", mid, 0)] = tuple(_l(x) for x in members[k:k + n_long])
        k += n_long
        stored[("members", mid, 1)] = tuple(_l(x) for x in members[k:k + n_short])
        k += n_short
    for a, mid, pos, equity, liq, liq_price, bk_price, score, owed in poss:
        a = _l(a)
        stored[("pos", a, mid)] = tuple(pos)
        if pos[0] != 0:
            views[("views", a, mid)] = (equity, liq, liq_price, bk_price, score, owed)
    return stored, views


def _eth_abi_snapshot(raw):
    totals, markets, accts, poss, members = decode(SNAPSHOT_TYPES, raw)
    def t(x):
        return tuple(t(y) for y in x) if isinstance(x, (tuple, list)) else x

    return (tuple(totals), [tuple(t(x) if isinstance(x, (tuple, list)) else x for x in m) for m in markets],
            [tuple(x) for x in accts], [tuple(x) for x in poss], list(members))


def escrow_address(vault):
    """The vault's escrow: the contract its constructor creates first
    (CREATE from the vault at nonce 1)."""
    from eth_utils import to_checksum_address

    raw = bytes.fromhex(vault[2:])
    return to_checksum_address("0x" + keccak(bytes([0xD6, 0x94]) + raw + bytes([0x01]))[12:].hex())


LP_VIEWS = ("pendingDepositRequest(uint256,address)", "claimableDepositRequest(uint256,address)",
            "maxMint(address)", "pendingRedeemRequest(uint256,address)", "claimableRedeemRequest(uint256,address)",
            "maxWithdraw(address)", "claimableCancelRedeemRequest(uint256,address)")


def _lp_view_args(sig, a):
    return (["uint256", "address"], [0, a]) if sig.startswith(("pending", "claimable")) else (["address"], [a])


def vault_reads(view, epoch_of, token_balance, vault_shares, addresses, lps):
    """The vault's epoch state as backends.py documents it, from
    view(role, signature, types, args) -> uint, epoch_of(id) -> 7-tuple,
    token_balance(address) and vault_shares(address)."""
    stored = {}
    epochs = tuple(view("vault", f"{name}()", [], []) for name in ("epoch", "closing", "settle_fee"))
    stored[("vault.epochs",)] = epochs
    for e in sorted({epochs[0], epochs[1]} - {0}):
        stored[("vault.epoch", e)] = epoch_of(e)
    stored[("bal", "escrow")] = token_balance(addresses["escrow"])
    stored[("vault.own",)] = vault_shares(addresses["vault"])
    for a in lps:
        stored[("lp", _l(a))] = tuple(view("vault", sig, *_lp_view_args(sig, a)) for sig in LP_VIEWS)
    return stored


def lens_snapshot_calldata(engine, accounts, with_views=True):
    return SNAPSHOT_SELECTOR + encode(["address", "address[]", "bool"], [engine, list(accounts), with_views])


# ------------------------------------------------------------------ anvil (ape)


class AnvilBackend:
    """The real devnet: ape deploys (scripts/deploy.py), raw JSON-RPC runs."""

    name = "anvil"
    full_views = True  # read() returns every view, whatever it is asked

    def __init__(self, protocol, roles):
        import requests
        from ape import chain

        self._chain = chain
        self.protocol = protocol
        self.uri = chain.provider.uri
        self._session = requests.Session()
        self._id = 0
        self.addresses = {
            "engine": protocol.engine.address,
            "exits": protocol.exits.address,
            "orders": protocol.orders.address,
            "admin": protocol.admin.address,
            "timelock": protocol.timelock.address,
            "vault": protocol.vault.address,
            "fund": protocol.insurance_fund.address,
            "token": protocol.token.address,
            "lens": protocol.lens.address,
            "escrow": protocol.vault.ESCROW(),
        }
        for i, feed in enumerate(protocol.feeds):
            self.addresses[f"feed{i}"] = feed.address
        for i, feed in protocol.fallback_feeds.items():
            self.addresses[f"fallback{i}"] = feed.address
        if protocol.sequencer_feed is not None:
            self.addresses["sequencer"] = protocol.sequencer_feed.address
        self.accounts = {name: a.address for name, a in roles.items()}
        self.tx_count = 0
        raw = self._lens_call([a.address for a in roles.values()])
        assert decode_snapshot(raw) == _eth_abi_snapshot(raw), "the hand decoder disagrees with eth_abi"

    # -------------------------------------------------------------- rpc
    def _post(self, body):
        return self._session.post(self.uri, json=body).json()

    def rpc(self, method, params):
        self._id += 1
        r = self._post({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        if "error" in r:
            raise RuntimeError(f"{method}: {r['error']}")
        return r["result"]

    # -------------------------------------------------------------- machine surface
    def head_time(self):
        return int(self.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def snapshot(self):
        return self._chain.snapshot()

    def restore(self, snap):
        self._chain.restore(snap)

    def send(self, sender, verb, args, t):
        """One HTTP round trip a transaction (two for an owner verb through
        the timelock, both at t: anvil mines equal timestamps): the next
        block's timestamp, then the transaction through
        eth_sendTransactionSync (anvil >= 1.3), which answers with the mined
        receipt. A revert's reason comes from a trace."""
        return governed_send(self, sender, verb, args, t)

    def _send(self, sender, to, data, t, verb):
        self._id += 2
        tx = {"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(GAS)}
        r = self._post([
            {"jsonrpc": "2.0", "id": self._id - 1, "method": "evm_setNextBlockTimestamp", "params": [t]},
            {"jsonrpc": "2.0", "id": self._id, "method": "eth_sendTransactionSync", "params": [tx]},
        ])
        r = sorted(r, key=lambda x: x["id"])
        for x in r:
            if "error" in x:
                raise RuntimeError(f"{verb}: {x['error']}")
        self.tx_count += 1
        receipt = r[1]["result"]
        if receipt["status"] == "0x1":
            return None
        trace = self.rpc("debug_traceTransaction", [receipt["transactionHash"], {"tracer": "callTracer"}])
        return decode_revert(bytes.fromhex(trace.get("output", "0x")[2:]))

    def _lens_call(self, accounts):
        raw = self.rpc("eth_call", [{
            "to": self.addresses["lens"],
            "data": "0x" + lens_snapshot_calldata(self.addresses["engine"], accounts).hex(),
            "gas": hex(GAS),
        }, "latest"])
        return bytes.fromhex(raw[2:])

    def _engine_call(self, data, i):
        return {"jsonrpc": "2.0", "id": i, "method": "eth_call",
                "params": [{"to": self.addresses["engine"], "data": "0x" + data.hex(), "gas": hex(GAS)}, "latest"]}

    def read(self, accounts, touched=(), valuation=True, orders=()):
        """Everything, views included: the lens's snapshot, order_count,
        order_expiry and get_order of each id in `orders`, in one JSON-RPC
        batch (touched and valuation are for the in-process backends, which
        cannot afford every view)."""
        orders = sorted(orders)
        calls = [{"jsonrpc": "2.0", "id": 0, "method": "eth_call", "params": [{
            "to": self.addresses["lens"],
            "data": "0x" + lens_snapshot_calldata(self.addresses["engine"], accounts).hex(),
            "gas": hex(GAS)}, "latest"]},
            self._engine_call(keccak(text="order_count()")[:4], 1),
            self._engine_call(keccak(text="order_expiry()")[:4], 2)]
        calls += [self._engine_call(GET_ORDER + oid.to_bytes(32, "big"), 3 + k) for k, oid in enumerate(orders)]
        extra = extra_feeds(self.addresses)
        calls += [{"jsonrpc": "2.0", "id": 3 + len(orders) + k, "method": "eth_call", "params": [{
            "to": self.addresses[role], "data": "0x" + keccak(text="latestRoundData()")[:4].hex(),
            "gas": hex(GAS)}, "latest"]} for k, role in enumerate(extra)]
        got = sorted(self._post(calls), key=lambda x: x["id"])
        for x in got:
            if "error" in x:
                raise RuntimeError(f"read: {x['error']}")
        out = [bytes.fromhex(x["result"][2:]) for x in got]
        stored, views = state_from_lens(out[0])
        stored[("orders",)] = (int.from_bytes(out[1], "big"), int.from_bytes(out[2], "big"))
        for role, raw in zip(extra, out[3 + len(orders):]):
            r = decode(["uint80", "int256", "uint256", "uint256", "uint80"], raw)
            stored[("feed", role)] = tuple(r[:4])
        for oid, raw in zip(orders, out[3:3 + len(orders)]):
            (account, mid, size, margin_delta, acceptable, at, reduce, fee, exec_fee, escrow, expires_at) = decode(
                ["address", "uint256", "int256", "int256", "uint256", "uint256", "bool", "uint256", "uint256",
                 "uint256", "uint256"], raw)
            stored[("order", oid)] = (_l(account), mid, size, margin_delta, acceptable, at, int(reduce), fee, exec_fee,
                                      expires_at)
            views[("escrow", oid)] = escrow
        stored.update(self._vault_reads())
        return stored, views

    def _vault_reads(self):
        """The vault's epoch state (vault_reads) in two JSON-RPC batches: the
        fixed views first, then get_epoch of the open and the closing epoch."""
        vault, token = self.addresses["vault"], self.addresses["token"]

        def data(sig, types=(), args=()):
            return "0x" + (keccak(text=sig)[:4] + encode(list(types), list(args))).hex()

        def batch(calls):
            body = [{"jsonrpc": "2.0", "id": i, "method": "eth_call",
                     "params": [{"to": to, "data": d, "gas": hex(GAS)}, "latest"]} for i, (to, d) in enumerate(calls)]
            got = sorted(self._post(body), key=lambda x: x["id"])
            for x in got:
                if "error" in x:
                    raise RuntimeError(f"read: {x['error']}")
            return [bytes.fromhex(x["result"][2:]) for x in got]

        lps = [self.accounts[r] for r in ("lp", "lp2") if r in self.accounts]
        keys, calls = [], []
        for name in ("epoch", "closing", "settle_fee"):
            keys.append(("vault", f"{name}()", ()))
            calls.append((vault, data(f"{name}()")))
        for holder in (self.addresses["escrow"],):
            keys.append(("token", "balanceOf(address)", (holder,)))
            calls.append((token, data("balanceOf(address)", ["address"], [holder])))
        keys.append(("vault", "balanceOf(address)", (vault,)))
        calls.append((vault, data("balanceOf(address)", ["address"], [vault])))
        for a in lps:
            for sig in LP_VIEWS:
                types, args = _lp_view_args(sig, a)
                keys.append(("vault", sig, tuple(args)))
                calls.append((vault, data(sig, types, args)))
        got = dict(zip(keys, (int.from_bytes(raw, "big") for raw in batch(calls))))
        epoch, closing = got[("vault", "epoch()", ())], got[("vault", "closing()", ())]
        ids = sorted({epoch, closing} - {0})
        epochs = dict(zip(ids, batch([(vault, data("get_epoch(uint256)", ["uint256"], [e])) for e in ids])))

        return vault_reads(lambda role, sig, types, args: got[(role, sig, tuple(args))],
                           lambda e: tuple(int.from_bytes(epochs[e][32 * i: 32 * i + 32], "big") for i in range(7)),
                           lambda a: got[("token", "balanceOf(address)", (a,))],
                           lambda a: got[("vault", "balanceOf(address)", (a,))],
                           self.addresses, lps)


# ------------------------------------------------------------------ titanoboa

_POSITION_VIEWS = [
    ("equity(address,uint256)", "int256"),
    ("is_liquidatable(address,uint256)", "bool"),
    ("liquidation_price(address,uint256)", "uint256"),
    ("bankruptcy_price(address,uint256)", "uint256"),
    ("adl_score(address,uint256)", "uint256"),
    ("funding_owed(address,uint256)", "int256"),
]


def load_layout(deployer):
    from vyper.compiler.output import build_layout_output

    return build_layout_output(deployer.compiler_data)["storage_layout"]


_SLOTS = {}


def _slot(base, *keys):
    """Vyper's HashMap slot: keccak256(slot ++ key), nested left to right
    (memoized: the machine reads the same few hundred slots every step)."""
    got = _SLOTS.get((base, keys))
    if got is None:
        s = base
        for k in keys:
            s = int.from_bytes(keccak(s.to_bytes(32, "big") + k.to_bytes(32, "big")), "big")
        got = _SLOTS[(base, keys)] = s
    return got


_SELECTORS = {}


def selector(signature):
    got = _SELECTORS.get(signature)
    if got is None:
        got = _SELECTORS[signature] = keccak(text=signature)[:4]
    return got


TOKEN_LAYOUT = {"balanceOf": 1, "totalSupply": 3}  # snekmate erc20's slots, checked against the vault's layout


_O = "(uint256,uint256,uint256,address,uint256)"
_ORACLE_SIGS = {"set_oracle": (f"set_oracle(uint256,{_O})", ["uint256", _O]),
                "set_sequencer_feed": ("set_sequencer_feed(address,uint256)", ["address", "uint256"])}


def deploy_in_process(contracts_dir, conf, deploy, transact, owner):
    """scripts/deploy.py's order for the in-process backends: token, feeds,
    PerpExits, PerpOrders, PerpAdmin, PerpEngine(token, exits, orders, admin), vault, fund,
    lens; initialize; add the markets; the timelock, handed the engine,
    vault and fund (`owner`, the deployer, its proposer and executor).

        deploy(rel_path, abi_types, args) -> address
        transact(address, signature, abi_types, args)   must succeed

    Returns (addresses by role and feed<i>, the market parameters, the
    storage layouts {"engine", "vault"})."""
    from scripts import config as cfg

    d = Path(contracts_dir)
    c = conf["collateral"]
    fd = conf.get("feed_decimals", 8)
    a = {"token": deploy(d / "mocks/MockToken.vy", ["string", "string", "uint8"], [c["name"], c["symbol"], c["decimals"]])}
    feeds = [deploy(d / "mocks/MockAggregator.vy", ["uint8", "int256"], [fd, m["initial_price"] * 10**fd])
             for m in conf["markets"]]
    a["exits"] = deploy(d / "PerpExits.vy", ["address"], [a["token"]])
    a["orders"] = deploy(d / "PerpOrders.vy", ["address"], [a["token"]])
    a["admin"] = deploy(d / "PerpAdmin.vy", ["address"], [a["token"]])
    a["engine"] = deploy(d / "PerpEngine.vy", ["address"] * 4, [a["token"], a["exits"], a["orders"], a["admin"]])
    a["vault"] = deploy(d / "LiquidityVault.vy", ["address", "address"], [a["token"], a["engine"]])
    a["escrow"] = escrow_address(a["vault"])
    a["fund"] = deploy(d / "InsuranceFund.vy", ["address", "address"], [a["token"], a["engine"]])
    a["lens"] = deploy(d / "BackstopLens.vy", [], [])
    transact(a["engine"], "initialize(address,address)", ["address", "address"], [a["vault"], a["fund"]])
    params = []
    for m, feed in zip(conf["markets"], feeds):
        p = cfg.market_params(m, feed, c["decimals"])
        transact(a["engine"], f"add_market({_P})", [_P], [p.as_tuple()])
        if cfg.borrow_rate(m):
            transact(a["engine"], "set_borrow_rate(uint256,uint256)", ["uint256", "uint256"], [len(params), cfg.borrow_rate(m)])
        params.append(p)
    if conf.get("max_profit_bps", 5000) != 5000:
        transact(a["engine"], "set_max_profit(uint256)", ["uint256"], [conf["max_profit_bps"] * 10**14])
    if conf.get("min_keeper_reward_units") or conf.get("min_notional_units"):
        transact(a["engine"], "set_keeper_reward(uint256,uint256)", ["uint256", "uint256"],
                 [conf["min_keeper_reward_units"], conf["min_notional_units"]])
    from scripts.oracles import deploy_oracles

    fallbacks, sequencer = deploy_oracles(
        a["engine"], conf,
        lambda args: deploy(d / "mocks/MockAggregator.vy", ["uint8", "int256"], list(args)),
        lambda up_since: deploy(d / "mocks/MockSequencerUptimeFeed.vy", ["uint256"], [up_since]),
        lambda verb, *args: transact(a["engine"], *_ORACLE_SIGS[verb], list(args)))
    # deploy_protocol's hand-over (scripts/governance.hand_over) at the
    # devnet's governance: delay 0, the deployer (the machine's "owner")
    # the timelock's only proposer and executor.
    a["timelock"] = deploy(d / "TimelockController.vy", ["uint256", "address[]", "address[]", "address"],
                           [0, [owner], [owner], ZERO_ADDRESS])
    for role in ("engine", "fund", "vault"):
        transact(a[role], "transfer_ownership(address)", ["address"], [a["timelock"]])
    accept = selector("accept_ownership()")
    batch = ([a["engine"], a["fund"]], [0, 0], [accept, accept], bytes(32), bytes(32))
    transact(a["timelock"], "schedule_batch(address[],uint256[],bytes[],bytes32,bytes32,uint256)",
             ["address[]", "uint256[]", "bytes[]", "bytes32", "bytes32", "uint256"], [*batch, 0])
    transact(a["timelock"], "execute_batch(address[],uint256[],bytes[],bytes32,bytes32)",
             ["address[]", "uint256[]", "bytes[]", "bytes32", "bytes32"], list(batch))
    for i, feed in enumerate(feeds):
        a[f"feed{i}"] = feed
    for i, feed in fallbacks.items():
        a[f"fallback{i}"] = feed
    if sequencer:
        a["sequencer"] = sequencer
    layout = {"engine": load_layout(compile_source(d / "PerpEngine.vy")),
              "vault": load_layout(compile_source(d / "LiquidityVault.vy"))}
    assert layout["vault"]["erc20"]["balanceOf"]["slot"] == TOKEN_LAYOUT["balanceOf"]
    return a, params, layout


_IMPORT = re.compile(r"^(?:import\s+(\w+)|from\s+(\w+)\s+import\s+(\w+))", re.M)


def _source_digest(path):
    """A digest of a contract's source and of every local module it imports,
    transitively (the contracts/ tree it sits in; snekmate and vyper's
    built-ins are pinned): two copies of contracts/ that differ only in a
    module a contract does not import compile that contract once."""
    path = Path(path).resolve()
    root = next((p for p in path.parents if p.name == "contracts"), path.parent)
    seen, todo, h = set(), [path], hashlib.sha256()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        text = f.read_text()
        h.update(str(f.relative_to(root)).encode() + b"\0" + text.encode() + b"\0")
        for name, package, member in _IMPORT.findall(text):
            base = root / name if name else root / package / member
            todo += [c for c in (base.with_suffix(".vy"), base.with_suffix(".vyi")) if c.exists()]
    return h.hexdigest()


def compile_source(path):
    """A .vy source compiled by vyper 0.4.3 through titanoboa's loader
    (snekmate and the contracts/ modules on its search path): the
    deployer, whose compiler_data holds the bytecode (the same bytes
    ape-vyper writes to .build: tests/unit/test_toolchain.py) and the
    storage layout. Cached by content: every in-process lab and backend
    shares one compile, and a planted-bug copy of contracts/ recompiles
    only the contracts whose sources (imports included) it changed."""
    import boa

    digest = _source_digest(path)
    if digest not in _COMPILED:
        _COMPILED[digest] = boa.load_partial(str(path))
    return _COMPILED[digest]


_COMPILED = {}


class SlotReader:
    """read() from storage slots, for the in-process backends: every stored
    value (slots located with vyper's storage layout and `_slot`), views only
    for the `touched` (account, market) pairs, and the vault's valuation only
    when asked, through the contracts' own view functions.

    A backend supplies _reader(role) -> (slot -> int), _view(role, signature,
    types, args, out) -> value, self._layout {"engine", "vault"} and
    self._token_layout. The slots of a given account list are worked out
    once (_plan); a read is then a few hundred storage lookups."""

    _plans = None
    _PLANS_MAX = 2048

    def _plan(self, accounts):
        eng = self._layout["engine"]
        pos = eng["positions"]
        bal = self._token_layout["balanceOf"]
        free = pos["_free"]["slot"]
        shares = self._layout["vault"]["erc20"]["balanceOf"]["slot"]
        keys = [_l(a) for a in accounts]
        ints = [int(a, 16) for a in accounts]
        return {
            "keys": keys,
            "market_count": pos["market_count"]["slot"],
            "owner": eng["ownable"]["owner"]["slot"],
            "paused": eng["pausable"]["paused"]["slot"],
            "pauser": pos["pauser"]["slot"],
            "role_bal": [(role, _slot(bal, int(self.addresses[role], 16))) for role in ("engine", "vault", "fund")],
            "supply": self._layout["vault"]["erc20"]["totalSupply"]["slot"],
            # per account: token balance, free collateral, vault shares
            "k_bal": [("bal", k) for k in keys], "k_free": [("free", k) for k in keys],
            "k_shares": [("shares", k) for k in keys],
            "s_bal": [_slot(bal, i) for i in ints],
            "s_free": [_slot(free, i) for i in ints],
            "s_shares": [_slot(shares, i) for i in ints],
            "params": pos["_params"]["slot"], "state": pos["_state"]["slot"],
            "max_profit": pos["max_profit"]["slot"], "total_cost": pos["total_cost"]["slot"],
            "min_keeper_reward": pos["min_keeper_reward"]["slot"], "min_notional": pos["min_notional"]["slot"],
            "pending": pos["_adl_jobs"]["slot"], "member_count": pos["_member_count"]["slot"],
            "members": pos["_members"]["slot"],
            "pos": (pos["_pos_a"]["slot"], pos["_pos_b"]["slot"], pos["_pos_c"]["slot"]),
            "order_count": pos["order_count"]["slot"], "order_expiry": pos["order_expiry"]["slot"],
            "orders": pos["_orders"]["slot"], "tp_sl_at": pos["_tp_sl_at"]["slot"], "last": pos["_pending"]["slot"],
            "ints": ints,
            "markets": {},
        }

    def _market_plan(self, plan, mid):
        got = plan["markets"].get(mid)
        if got is None:
            sa, sb, sc = plan["pos"]
            got = plan["markets"][mid] = {
                "params": [_slot(plan["params"], mid) + i for i in range(13)],
                "state": [_slot(plan["state"], mid) + i for i in range(7)],
                "pending": [_slot(plan["pending"], mid, j) + i for j in range(4) for i in range(7)],
                "count": [_slot(plan["member_count"], mid * 2 + side) for side in (0, 1)],
                "member_slots": ([], []),
                "k_pos": [("pos", k, mid) for k in plan["keys"]],
                "s_a": [_slot(sa, i, mid) for i in plan["ints"]],
                "s_b": [_slot(sb, i, mid) for i in plan["ints"]],
                "s_c": [_slot(sc, i, mid) for i in plan["ints"]],
                "k_tp_sl_at": [("tp_sl_at", k, mid) for k in plan["keys"]],
                "s_tp_sl_at": [_slot(plan["tp_sl_at"], i, mid) for i in plan["ints"]],
                "k_last": [("last order", k, mid) for k in plan["keys"]],
                "s_last": [_slot(plan["last"], i, mid) for i in plan["ints"]],
            }
        return got

    def read(self, accounts, touched=(), valuation=False, orders=()):
        if self._plans is None:
            self._plans = {}
        accounts_key = tuple(accounts)
        plan = self._plans.get(accounts_key)
        if plan is None:
            if len(self._plans) > self._PLANS_MAX:  # a partial read names one of many account subsets
                self._plans.clear()
            plan = self._plans[accounts_key] = self._plan(accounts)
        # one C-level storage reader per contract; map() runs them over slot lists
        ge, gt, gv = self._reader("engine"), self._reader("token"), self._reader("vault")
        stored, views = {}, {}
        n = ge(plan["market_count"])
        stored[("totals",)] = (n, bool(ge(plan["paused"])), "0x%040x" % ge(plan["owner"]),
                               "0x%040x" % ge(plan["pauser"]))
        for role, slot in plan["role_bal"]:
            stored[("bal", role)] = gt(slot)
        stored[("vault.supply",)] = gv(plan["supply"])
        stored[("solvency",)] = (ge(plan["max_profit"]), ge(plan["total_cost"]), ge(plan["min_keeper_reward"]),
                                 ge(plan["min_notional"]))
        stored.update(zip(plan["k_bal"], map(gt, plan["s_bal"])))
        stored.update(zip(plan["k_free"], map(ge, plan["s_free"])))
        stored.update(zip(plan["k_shares"], map(gv, plan["s_shares"])))
        mask = 2**128 - 1
        closed = (0, 0, 0, 0, 0, 0)
        for mid in range(n):
            m = self._market_plan(plan, mid)
            p = list(map(ge, m["params"]))
            stored[("params", mid)] = ("0x%040x" % p[0], *p[1:])
            st = list(map(ge, m["state"]))
            clock = st[6]  # last_funding_time | borrow_rate << 64 | borrow_index << 128
            st[4], st[5], st[6] = _signed(st[4]), _signed(st[5]), clock & (2**64 - 1)
            stored[("state", mid)] = (*st, clock >> 128, (clock >> 64) & (2**64 - 1))
            q = list(map(ge, m["pending"]))
            stored[("pending", mid)] = tuple((j[0], j[1], _signed(j[2]), j[3], "0x%040x" % j[4], j[5], j[6])
                                             for j in (q[7 * i: 7 * i + 7] for i in range(4)))
            f = list(map(self._reader(f"feed{mid}"), (1, 2, 3, 4, 5)))
            f[1] = _signed(f[1])
            stored[("feed", mid)] = tuple(f)
            for side in (0, 1):
                cnt = ge(m["count"][side])
                slots = m["member_slots"][side]
                while len(slots) < cnt:  # slots of the side set's entries, worked out as it grows
                    slots.append(_slot(plan["members"], mid * 2 + side, len(slots)))
                stored[("members", mid, side)] = tuple("0x%040x" % x for x in map(ge, slots[:cnt]))
            # all three slots of every account's position: a close that
            # leaves a slot behind (a stale TP/SL, say) must show
            stored.update(zip(m["k_pos"], [
                closed if pa == pb == pc == 0 else
                ((pa & mask) - 2**127, pb & mask, pa >> 128, (pb >> 128) - 2**127, pc & mask, pc >> 128)
                for pa, pb, pc in zip(map(ge, m["s_a"]), map(ge, m["s_b"]), map(ge, m["s_c"]))]))
            stored.update((k, t) for k, t in zip(m["k_tp_sl_at"], map(ge, m["s_tp_sl_at"])) if t)
            # each (account, market)'s last order: id | expires_at << 128, never cleared
            stored.update((k, (v & _MASK128, v >> 128)) for k, v in zip(m["k_last"], map(ge, m["s_last"])) if v)
        stored[("orders",)] = (ge(plan["order_count"]), ge(plan["order_expiry"]))
        if "_extra_feeds" not in self.__dict__:
            self._extra_feeds = extra_feeds(self.addresses)
        for role in self._extra_feeds:
            # round id, answer, startedAt, updatedAt: slots 1-4 of both mocks
            f = list(map(self._reader(role), (1, 2, 3, 4)))
            f[1] = _signed(f[1])
            stored[("feed", role)] = tuple(f)
        for oid in orders:
            base = _slot(plan["orders"], oid)
            s0 = ge(base)
            last = ge(_slot(plan["last"], s0 & _MASK160, (s0 >> 195) & 63)) if s0 else 0
            expires_at = last >> 128 if last & _MASK128 == oid else 0
            stored[("order", oid)] = unpack_order(s0, ge(base + 1), ge(base + 2), expires_at)
        for a, mid in touched:
            if stored[("pos", _l(a), mid)][0] == 0:
                continue
            views[("views", _l(a), mid)] = tuple(
                self._view("engine", sig, ["address", "uint256"], [a, mid], out) for sig, out in _POSITION_VIEWS)
        if valuation:
            views[("valuation",)] = (self._view("vault", "totalAssets()", [], [], "uint256"),
                                     self._view("vault", "free_cash()", [], [], "uint256"),
                                     self._view("engine", "traders_claim()", [], [], "int256"),
                                     self._view("engine", "traders_gain()", [], [], "uint256"),
                                     self._view("engine", "traders_reserve()", [], [], "uint256"),
                                     self._view("vault", "entry_assets()", [], [], "uint256"))
        stored.update(self._vault_reads(gv, gt))
        return stored, views

    # The LP views (LP_VIEWS) are pure functions of the vault's storage: an
    # LP's pending and claim records, its _returned, and the epochs its
    # pending records name. Read those slots (0.3 us each) and call the seven
    # views (~20 us each) only for a fingerprint not seen before; the
    # comparison is unchanged (the same values, read the same way).
    _LP_RECORDS = (("_deposit_pending", 2), ("_redeem_pending", 2), ("_deposit_claim", 2), ("_redeem_claim", 2),
                   ("_returned", 1))
    _LP_CACHE_MAX = 4096

    def _vault_reads(self, gv, gt):
        """vault_reads' values (the same keys, the same view functions),
        epoch, closing and settle_fee from their slots."""
        plan = self.__dict__.get("_vault_plan")
        if plan is None:
            lay = self._layout["vault"]
            lps = [self.accounts[r] for r in ("lp", "lp2") if r in self.accounts]
            plan = self._vault_plan = {
                "globals": [lay[name]["slot"] for name in ("epoch", "closing", "settle_fee")],
                "epochs": lay["_epochs"]["slot"], "epoch_slots": {}, "lp_cache": {},
                "escrow": _slot(self._token_layout["balanceOf"], int(self.addresses["escrow"], 16)),
                "own": _slot(lay["erc20"]["balanceOf"]["slot"], int(self.addresses["vault"], 16)),
                # per LP: (address, key, the slots of its records in _LP_RECORDS order)
                "lps": [(a, _l(a), [_slot(lay[name]["slot"], int(a, 16)) + i
                                    for name, n in self._LP_RECORDS for i in range(n)]) for a in lps],
            }
        epoch_slots = plan["epoch_slots"]

        def epoch_of(e):
            got = epoch_slots.get(e)
            if got is None:
                got = epoch_slots[e] = [_slot(plan["epochs"], e) + i for i in range(7)]
            return tuple(map(gv, got))

        stored = {}
        ep = tuple(map(gv, plan["globals"]))
        stored[("vault.epochs",)] = ep
        for e in sorted({ep[0], ep[1]} - {0}):
            stored[("vault.epoch", e)] = epoch_of(e)
        stored[("bal", "escrow")] = gt(plan["escrow"])
        stored[("vault.own",)] = gv(plan["own"])
        cache = plan["lp_cache"]
        if len(cache) > self._LP_CACHE_MAX:
            cache.clear()
        for a, key, slots in plan["lps"]:
            records = tuple(map(gv, slots))
            # the epochs of the deposit and the redemption pending (their first slot is the epoch id)
            fp = (key, records, epoch_of(records[0]), epoch_of(records[2]))
            got = cache.get(fp)
            if got is None:
                got = cache[fp] = tuple(self._view("vault", sig, *_lp_view_args(sig, a), "uint256") for sig in LP_VIEWS)
            stored[("lp", key)] = got
        return stored


class BoaBackend(SlotReader):
    """py-evm in process: the same .vy sources (or a modified copy of them,
    for the planted-bug tests), compiled by titanoboa for prague."""

    name = "boa"
    full_views = False

    def __init__(self, roles, contracts_dir=CONTRACTS, config=None):
        import boa
        from scripts import config as cfg

        self._boa = boa
        self.env = boa.Env()
        # Vyper 0.4.3 targets prague; so must the interpreter (PROPERTIES #29).
        assert type(self.env.evm.vm).__name__ == "PragueVM", type(self.env.evm.vm).__name__
        self.env.evm.patch.timestamp = max(self.env.evm.patch.timestamp, 1_800_000_000)
        self.accounts = {name: self.env.generate_address(name) for name in roles}
        for name in roles:
            self.accounts[name] = str(self.accounts[name])
        owner = self.accounts["owner"]
        self.env.eoa = owner
        self.contracts = {}

        def deploy(path, types, args):
            c = compile_source(path).deploy(*args)
            self.contracts.setdefault(path.stem, c)
            return str(c.address)

        def transact(to, signature, types, args):
            c = self.env.execute_code(to_address=to, sender=owner, data=selector(signature) + encode(types, args),
                                      gas=GAS)
            assert not c.is_error, f"{signature}: {decode_revert(c.output)!r}"

        with boa.swap_env(self.env):
            self.addresses, self.params, self._layout = deploy_in_process(
                contracts_dir, config or cfg.load("local"), deploy, transact, owner)
        self.contracts = {"engine": self.contracts["PerpEngine"]}  # the wrapper scripts/bench.py reads through
        self._canon = {k: bytes.fromhex(v[2:]) for k, v in self.addresses.items()}
        self._state = self.env.evm.vm.state
        self._token_layout = TOKEN_LAYOUT
        self.n_markets = len(self.params)
        self.tx_count = 0
        self._now = self.env.evm.patch.timestamp
        self._anchors = []

    # -------------------------------------------------------------- machine surface
    def head_time(self):
        return self._now

    def snapshot(self):
        cm = self.env.anchor()
        cm.__enter__()
        self._anchors.append(cm)
        return len(self._anchors)

    def restore(self, snap):
        assert snap == len(self._anchors), "boa anchors restore in LIFO order"
        self._anchors.pop().__exit__(None, None, None)
        self._now = self.env.evm.patch.timestamp

    def send(self, sender, verb, args, t):
        return governed_send(self, sender, verb, args, t)

    def _send(self, sender, to, data, t, verb):
        self.env.evm.patch.timestamp = t
        self._now = t
        c = self.env.execute_code(to_address=to, sender=sender, data=data, gas=GAS)
        self.tx_count += 1
        if not c.is_error:
            return None
        return decode_revert(c.output)

    def _view(self, role, signature, types, args, out):
        """A view through execute_code: titanoboa's contract wrapper adds
        about a millisecond a call on top of py-evm."""
        c = self.env.execute_code(to_address=self.addresses[role], data=selector(signature) + encode(types, args),
                                  is_modifying=False, gas=GAS)
        assert not c.is_error, f"{signature} reverted: {decode_revert(c.output)!r}"
        return decode([out], c.output)[0]

    # -------------------------------------------------------------- storage reads
    def _reader(self, role):
        return partial(self._state.get_storage, self._canon[role])


# ------------------------------------------------------------------ revm (in process)

def _revm_address(name):
    from eth_utils import to_checksum_address

    return to_checksum_address("0x" + keccak(text=f"backstop.revm.{name}")[12:].hex())


class RevmBackend(SlotReader):
    """The same compiled contracts in revm (pyrevm 0.3.7, in process): about
    20 us a transaction where py-evm takes 7 ms. Reads the stored values
    it is asked for (the machine names the accounts) from storage slots
    (0.3 us a slot) after every step, and the views of
    the positions a step touched through the engine's view functions
    (~11 us each). Spec prague, as vyper 0.4.3 targets."""

    name = "revm"
    full_views = False

    def __init__(self, roles, contracts_dir=CONTRACTS, config=None):
        import pyrevm

        from scripts import config as cfg

        self._pyrevm = pyrevm
        self.evm = pyrevm.EVM(spec_id="PRAGUE", gas_limit=GAS)
        self.accounts = {name: _revm_address(name) for name in roles}
        self._now = 1_800_000_000
        self._number = 1
        self._set_block()
        owner = self.accounts["owner"]

        def deploy(path, types, args):
            return self.evm.deploy(owner, compile_source(path).compiler_data.bytecode + encode(types, args), gas=GAS)

        def transact(to, signature, types, args):
            ok, out = self._call(owner, to, selector(signature) + encode(types, args))
            assert ok, f"{signature}: {decode_revert(out)!r}"

        self.addresses, self.params, self._layout = deploy_in_process(
            contracts_dir, config or cfg.load("local"), deploy, transact, owner)
        self._token_layout = TOKEN_LAYOUT
        self.n_markets = len(self.params)
        self.tx_count = 0
        self._snaps = []
        self._readers = {}
        self._view_data = {}  # (role, signature, *args) -> (address, calldata)
        self._owner = self.accounts["owner"]

    def _set_block(self):
        self.evm.set_block_env(self._pyrevm.BlockEnv(number=self._number, timestamp=self._now))

    def _call(self, sender, to, data):
        """(success, output). pyrevm reports a revert as a RuntimeError
        "Revert { gas_used: .., output: 0x.. }" and a halt (out of gas, an
        invalid opcode) as another RuntimeError."""
        try:
            return True, self.evm.message_call(sender, to, data, gas=GAS)
        except RuntimeError as exc:
            text = str(exc)
            if text.startswith("Revert"):
                return False, bytes.fromhex(text.split("output: 0x", 1)[1].split()[0].rstrip("},"))
            return False, ("halt: " + text).encode()

    # -------------------------------------------------------------- machine surface
    def head_time(self):
        return self._now

    def snapshot(self):
        self._snaps.append((self.evm.snapshot(), self._now, self._number))
        return len(self._snaps)

    def restore(self, snap):
        assert snap == len(self._snaps), "revm checkpoints restore in LIFO order"
        cp, self._now, self._number = self._snaps.pop()
        self.evm.revert(cp)
        self._set_block()

    def send(self, sender, verb, args, t):
        """One transaction in its own block, at timestamp t. A halt comes back
        as "halt: ..." so that it can never pass for a Vyper revert. An
        owner verb goes through the timelock: two transactions, two blocks,
        both at t."""
        return governed_send(self, sender, verb, args, t)

    def _send(self, sender, to, data, t, verb):
        self._number += 1
        self._now = t
        self._set_block()
        ok, out = self._call(sender, to, data)
        self.tx_count += 1
        if ok:
            return None
        if out.startswith(b"halt: "):
            return out.decode()
        return decode_revert(out)

    # -------------------------------------------------------------- reads (SlotReader)
    def _reader(self, role):
        got = self._readers.get(role)
        if got is None:
            got = self._readers[role] = partial(self.evm.storage, self.addresses[role])
        return got

    def _view(self, role, signature, types, args, out):
        key = (role, signature, *args)
        data = self._view_data.get(key)
        if data is None:
            data = self._view_data[key] = (self.addresses[role], selector(signature) + fast_encode(types, args))
        ok, raw = self._call(self._owner, *data)
        assert ok, f"{signature} reverted: {decode_revert(raw)!r}"
        assert len(raw) == 32, f"{signature} returned {len(raw)} bytes"
        x = int.from_bytes(raw, "big")
        if out == "int256":
            return _signed(x)
        if out == "bool":
            assert x in (0, 1), f"{signature}: not a bool {x}"
            return x == 1
        assert out == "uint256", out
        return x
