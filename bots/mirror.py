"""The chain's engine state, mirrored into a model `World`.

The keeper decides with model/ (the same integers as the contracts): it
keeps a World whose positions are loaded once at start-up (every member of
every market side) and then re-read for exactly the (account, market) pairs
that an engine event touched; market state, oracle answers, pending ADL
jobs, the engine-wide parameters and totals (max_profit, total_cost,
min_keeper_reward, min_notional) and the token balances the exit paths
move are re-read every block.
Pending orders are read once at start-up (every id up to `order_count`) and
then followed through OrderRequested (read with `get_order`, with the
order's own deadline `expires_at`: `set_order_expiry` does not move it) and
OrderExecuted / OrderCancelled (dropped); the time TP/SL triggers were last
set (`execute_tp_sl` needs a round later than it) comes from the block of
each TpSlSet event.
The vault's LP epochs (ERC-7540, docs/lp-epochs.md) are re-read every
block: the open and the closing epoch, the settle fee, the share supply and
the vault's own shares, and the escrow's token balance, so the model's
`liquidity_vault.settle` runs on the World as the contract would.
Every read is an eth_call at one block number, so the mirror is the chain
at that block, to the unit.
"""

from dataclasses import dataclass

from eth_abi import decode

from bots import rpc as R
from model import World
from model import liquidity_vault as LV
from model import positions as P
from model.mocks import Feed

ERC20_BALANCE = "balanceOf(address)"
# The engine's engine-wide views the model reads (positions.EngineState fields of the same names).
ENGINE_WIDE = ("max_profit", "total_cost", "min_keeper_reward", "min_notional")


def _dec(types, hex_result):
    return decode(types, bytes.fromhex(hex_result[2:]))


class NotAnEngine(Exception):
    """The --engine address holds no contract: a configuration error."""


@dataclass
class Change:
    """One engine event: what it was, and the (account, market) it touched."""
    name: str
    block: int
    tx: str
    account: str | None
    market_id: int | None
    order_id: int | None = None


class Mirror:
    def __init__(self, client, engine, owner="0x" + "00" * 20):
        self.rpc = client
        self.engine = R.addr(engine)
        self.block = None
        self.block_hash = None
        self.w = None
        self.dirty = set()  # (account, market) pairs to re-read next block
        self._owner = owner

    # ------------------------------------------------------------ reads
    def _call(self, sig, types, args, out_types, block, to=None):
        (res,) = self.rpc.calls([(to or self.engine, R.calldata(sig, types, args))], hex(block))
        if isinstance(res, Exception):
            raise res
        return _dec(out_types, res)

    def _calls(self, items, block):
        """items: [(to, sig, types, args, out_types)] -> decoded tuples."""
        raw = self.rpc.calls([(to, R.calldata(sig, types, args)) for to, sig, types, args, _ in items], hex(block))
        out = []
        for (_, sig, _, _, out_types), res in zip(items, raw):
            if isinstance(res, Exception):
                raise R.RpcError(f"{sig} reverted: {res.reason}")
            out.append(_dec(out_types, res))
        return out

    def head(self):
        return int(self.rpc.request("eth_blockNumber", []), 16)

    def block_timestamp(self, number):
        blk = self.rpc.request("eth_getBlockByNumber", [hex(number), False])
        if blk is None:
            raise R.RpcError(f"block {number} not found")
        return int(blk["timestamp"], 16)

    # ------------------------------------------------------------ start-up
    def load(self, block):
        """Build the World from scratch at `block`: markets, feeds, every open
        position of every side, pending ADL jobs, balances."""
        e = self.engine
        (code,) = [self.rpc.request("eth_getCode", [e, hex(block)])]
        if code in (None, "0x", "0x0"):
            raise NotAnEngine(f"no contract at engine address {e}")
        (scale,), (vault,), (fund,), (token,), (n_markets,) = self._calls([
            (e, "SCALE()", [], [], ["uint256"]),
            (e, "vault()", [], [], ["address"]),
            (e, "insurance_fund()", [], [], ["address"]),
            (e, "COLLATERAL()", [], [], ["address"]),
            (e, "market_count()", [], [], ["uint256"]),
        ], block)
        token_decimals = 36 - len(str(scale)) + 1
        w = World(engine=e, vault=R.addr(vault), fund=R.addr(fund), owner=self._owner,
                  token_decimals=token_decimals, token_address=R.addr(token))
        w.e.scale = scale
        w.e.vault, w.e.insurance_fund = w.vault_address, w.fund_address
        w.e.market_count = n_markets
        (escrow,) = self._call("ESCROW()", [], [], ["address"], block, to=w.vault_address)
        w.v.escrow = R.addr(escrow)
        self.w = w
        for mid in range(n_markets):
            self._load_market(mid, block)
        for mid in range(n_markets):
            for is_long in (True, False):
                (count,) = self._call("position_count(uint256,bool)", ["uint256", "bool"], [mid, is_long], ["uint256"], block)
                members = self._calls([
                    (e, "position_at(uint256,bool,uint256)", ["uint256", "bool", "uint256"], [mid, is_long, i], ["address"])
                    for i in range(count)], block)
                accounts = [R.addr(m[0]) for m in members]
                w.e.members[mid * 2 + (0 if is_long else 1)] = accounts
                self._read_positions([(a, mid) for a in accounts], block)
        self._load_orders(block)
        self._load_tp_sl_times(block)
        self.refresh(block)
        return w

    ORDER_CHUNK = 500

    def _load_orders(self, block):
        """Every pending order at `block` (ids 1..order_count), and the expiry."""
        w, e = self.w, self.engine
        (count,), (expiry,) = self._calls([(e, "order_count()", [], [], ["uint256"]),
                                           (e, "order_expiry()", [], [], ["uint256"])], block)
        w.e.order_count, w.e.order_expiry = count, expiry
        w.e.orders = {}
        w.e.pending = {}
        for lo in range(1, count + 1, self.ORDER_CHUNK):
            self._read_orders(list(range(lo, min(count, lo + self.ORDER_CHUNK - 1) + 1)), block)

    def _read_orders(self, ids, block):
        """Re-read orders by id: pending ones are stored, done ones dropped."""
        if not ids:
            return
        res = self._calls([(self.engine, "get_order(uint256)", ["uint256"], [i], [f"({','.join(R.ORDER)})"]) for i in ids],
                          block)
        for oid, (o,) in zip(ids, res):
            account = R.addr(o[0])
            if int(account, 16) == 0:
                self.w.e.orders.pop(oid, None)
                continue
            mid, expires_at = int(o[1]), int(o[10])
            self.w.e.orders[oid] = P.Order(account=account, market_id=mid, size_delta=int(o[2]),
                                           margin_delta=int(o[3]), acceptable_price=int(o[4]), requested_at=int(o[5]),
                                           reduce_only=bool(o[6]), trading_fee=int(o[7]), execution_fee=int(o[8]))
            # As the model keeps it: escrow and deadline are derived by
            # P._load_order, the deadline from the account's pending word
            # (order id, expires_at), which also gives P._pending_id.
            self.w.e.pending[(account, mid)] = (oid, expires_at)

    def _load_tp_sl_times(self, block):
        """When each open position's TP/SL was last set: the timestamp of the
        block of its last TpSlSet event (no view exposes it)."""
        w = self.w
        wanted = {k for k, pos in w.e.positions.items() if pos.take_profit or pos.stop_loss}
        if not wanted:
            return
        logs = self.rpc.request("eth_getLogs", [{"address": self.engine, "topics": [R.TP_SL_SET], "fromBlock": "0x0",
                                                 "toBlock": hex(block)}])
        last = {}
        for log in logs:
            key = (R.addr("0x" + log["topics"][1][-40:]), int(log["topics"][2], 16))
            if key in wanted:
                last[key] = int(log["blockNumber"], 16)
        times = self._timestamps(set(last.values()))
        for key, blk in last.items():
            w.e.tp_sl_at[key] = times[blk]

    def _timestamps(self, blocks):
        blocks = sorted(blocks)
        res = self.rpc.batch([("eth_getBlockByNumber", [hex(b), False]) for b in blocks])
        out = {}
        for b, blk in zip(blocks, res):
            if isinstance(blk, Exception) or blk is None:
                raise R.RpcError(f"block {b}: {blk}")
            out[b] = int(blk["timestamp"], 16)
        return out

    def _load_market(self, mid, block):
        w, e = self.w, self.engine
        (params,) = self._calls([(e, "market_params(uint256)", ["uint256"], [mid], [f"({','.join(R.MARKET_PARAMS)})"])], block)
        fields = list(params[0])
        fields[0] = R.addr(fields[0])
        p = P.MarketParams(*[fields[0], *[int(x) for x in fields[1:]]])
        (dec,) = self._call("decimals()", [], [], ["uint8"], block, to=p.feed)
        w.e.params[mid] = p
        w.e.feed_scale[mid] = 10 ** (18 - dec)
        if p.feed not in w.feeds:
            w.feeds[p.feed] = Feed(decimals=dec)
        w.e.state.setdefault(mid, P.MarketState())
        self._load_oracle(mid, block)

    def _load_oracle(self, mid, block):
        """The market's price bounds, heartbeat and fallback feed
        (oracle_params; docs/trust.md "Oracles"): the model's price
        selection reads them."""
        w = self.w
        (o,) = self._call("oracle_params(uint256)", ["uint256"], [mid], ["(uint256,uint256,uint256,address,uint256)"], block)
        lo, hi, heartbeat, fallback, fallback_max_age = o
        fallback, f_scale = R.addr(fallback), 0
        if int(fallback, 16):
            (fdec,) = self._call("decimals()", [], [], ["uint8"], block, to=fallback)
            f_scale = 10 ** (18 - fdec)
            w.feeds.setdefault(fallback, Feed(decimals=fdec))
        w.e.oracle[mid] = P.OracleParams(int(lo), int(hi), int(heartbeat), fallback, int(fallback_max_age), f_scale)

    def _refresh_oracles(self, block):
        """Each block: every market's oracle settings (the owner may change
        them), the fallback feeds' latest rounds and the sequencer-uptime
        feed's, so the model selects the price the engine would."""
        w = self.w
        for mid in range(w.e.market_count):
            self._load_oracle(mid, block)
        (seq,), (grace,) = self._calls([(self.engine, "sequencer_feed()", [], [], ["address"]),
                                        (self.engine, "sequencer_grace()", [], [], ["uint256"])], block)
        w.e.sequencer_feed, w.e.sequencer_grace = R.addr(seq), int(grace)
        feeds = sorted({o.fallback for o in w.e.oracle.values() if int(o.fallback, 16)})
        fallbacks = list(feeds)
        if int(w.e.sequencer_feed, 16):
            w.feeds.setdefault(w.e.sequencer_feed, Feed(decimals=0))
            feeds.append(w.e.sequencer_feed)
        rounds = self.rpc.calls([(f, R.calldata("latestRoundData()", [], [])) for f in feeds], hex(block))
        for f, res in zip(feeds, rounds):
            feed = w.feeds[f]
            feed.reverts = isinstance(res, Exception)  # a broken fallback is what the engine sees too
            if not feed.reverts:
                feed.set_round_data(*(int(x) for x in _dec(R.ROUND, res)))
        # a fallback prices only within MAX_FEED_JUMP of its previous round
        # (positions._feed_round's history): read that round too
        prev = [(f, w.feeds[f].round_id - 1) for f in fallbacks
                if not w.feeds[f].reverts and w.feeds[f].round_id & (2**64 - 1) > 1]
        if prev:
            rounds = self.rpc.calls([(f, R.calldata("getRoundData(uint80)", ["uint80"], [rid])) for f, rid in prev],
                                    hex(block))
            for (f, rid), res in zip(prev, rounds):
                if isinstance(res, Exception):
                    w.feeds[f].history.pop(rid, None)  # unsound to the engine too
                else:
                    _, answer, started, updated, answered = (int(x) for x in _dec(R.ROUND, res))
                    w.feeds[f].history[rid] = (answer, started, updated, answered)

    def _read_positions(self, pairs, block):
        """Re-read (account, market) positions and store them in the World,
        keeping the side sets in step."""
        if not pairs:
            return
        res = self._calls([
            (self.engine, "get_position(address,uint256)", ["address", "uint256"], [a, mid], [f"({','.join(R.POSITION)})"])
            for a, mid in pairs], block)
        w = self.w
        for (a, mid), (pos,) in zip(pairs, res):
            new = P.Position(*[int(x) for x in pos])
            old = w.e.positions.get((a, mid))
            if old is not None and old.size != 0:
                lst = w.e.members.get(P.side_key(mid, old.size), [])
                if a in lst and (new.size == 0 or (new.size > 0) != (old.size > 0)):
                    lst.remove(a)
            if new.size == 0:
                w.e.positions.pop((a, mid), None)
                continue
            lst = w.e.members.setdefault(P.side_key(mid, new.size), [])
            if a not in lst:
                lst.append(a)
            w.e.positions[(a, mid)] = new

    # ------------------------------------------------------------ every block
    def refresh(self, block):
        """Per-block reads: oracle answers, market aggregates, pending ADL
        jobs, the balances the liquidation path moves, and the vault's
        epochs."""
        w, e = self.w, self.engine
        v = w.vault_address
        items = []
        for mid in range(w.e.market_count):
            p = w.e.params[mid]
            items += [
                (p.feed, "latestRoundData()", [], [], R.ROUND),
                (e, "market_state(uint256)", ["uint256"], [mid], [f"({','.join(R.MARKET_STATE)})"]),
            ] + [(e, "adl_pending(uint256,uint256)", ["uint256", "uint256"], [mid, i], [f"({','.join(R.ADL_PENDING)})"])
                 for i in range(P.MAX_ADL_JOBS)]
        holders = [w.engine_address, w.vault_address, w.fund_address, w.v.escrow]
        items += [(w.token_address, ERC20_BALANCE, ["address"], [h], ["uint256"]) for h in holders]
        # Engine-wide: the payout cap's reserve (max_profit x total_cost) and
        # the keeper floor, which the vault's valuations and the keeper's
        # rewards depend on.
        items += [(e, f"{name}()", [], [], ["uint256"]) for name in ENGINE_WIDE]
        vault_reads = [(v, sig, [], [], ["uint256"]) for sig in ("closing()", "epoch()", "settle_fee()", "totalSupply()")]
        items += vault_reads + [(v, ERC20_BALANCE, ["address"], [v], ["uint256"])]
        out = self._calls(items, block)
        tail = out[len(out) - len(vault_reads) - 1 - len(ENGINE_WIDE):]
        for name, (value,) in zip(ENGINE_WIDE, tail):
            setattr(w.e, name, int(value))
        (closing,), (open_epoch,), (fee,), (supply,), (own,) = tail[len(ENGINE_WIDE):]
        ids = [i for i in (closing, open_epoch) if i]
        epochs = self._calls([(v, "get_epoch(uint256)", ["uint256"], [i], [f"({','.join(R.EPOCH)})"]) for i in ids], block)
        w.v.closing, w.v.epoch, w.v.settle_fee, w.v.total_supply = closing, open_epoch, fee, supply
        w.v.balances = {v: own}  # settle mints and burns only the vault's own shares
        w.v.epochs = {i: LV.Epoch(*(int(x) for x in ep[0])) for i, ep in zip(ids, epochs)}
        width = 2 + P.MAX_ADL_JOBS
        for mid in range(w.e.market_count):
            rd, (st,), *jobs = out[width * mid: width * (mid + 1)]
            f = w.feeds[w.e.params[mid].feed]
            # kept in the feed's history too: the model's settle prices an epoch at the
            # first round later than its last request (first_round_after walks back)
            f.set_round_data(*(int(x) for x in rd))
            w.e.state[mid] = P.MarketState(*[int(x) for x in st])
            queue = [P.AdlPending(int(j[0]), int(j[1]), int(j[2]), int(j[3]), R.addr(j[4]), int(j[5]), int(j[6]))
                     for (j,) in jobs]
            w.e.adl_jobs[mid] = [j for j in queue if j.remaining > 0]
        for h, (bal,) in zip(holders, out[width * w.e.market_count: width * w.e.market_count + len(holders)]):
            w.token.balances[h] = int(bal)
        blk = self.rpc.request("eth_getBlockByNumber", [hex(block), False])
        if blk is None:
            raise R.RpcError(f"block {block} not found")
        w.now = int(blk["timestamp"], 16)
        self._refresh_oracles(block)
        self.block = block
        self.block_hash = blk.get("hash")  # the keeper tells a reorganised or reset chain by it

    def changes(self, from_block, to_block):
        """Engine events in [from_block, to_block], oldest first."""
        logs = self.rpc.request("eth_getLogs", [{"address": self.engine, "fromBlock": hex(from_block), "toBlock": hex(to_block)}])
        out = []
        for log in logs:
            topics = log.get("topics") or []
            if not topics:
                continue
            t0 = topics[0]
            blk, tx = int(log["blockNumber"], 16), log["transactionHash"]
            if t0 in R.POSITION_EVENTS:
                name, ((ia, im),) = R.POSITION_EVENTS[t0]
                account = R.addr("0x" + topics[ia][-40:])
                out.append(Change(name, blk, tx, account, int(topics[im], 16)))
            elif t0 in R.MARKET_EVENTS:
                mid = int(topics[1], 16) if len(topics) > 1 else None
                out.append(Change(R.MARKET_EVENTS[t0], blk, tx, None, mid))
            elif t0 in R.ORDER_EVENTS:
                out.append(Change(R.ORDER_EVENTS[t0], blk, tx, None, None, int(topics[1], 16)))
            elif t0 == R.ORDER_EXPIRY_SET:
                out.append(Change("OrderExpirySet", blk, tx, None, None))
        return out

    def apply(self, changes, block):
        """Bring the World to `block` after `changes` (from `changes()`)."""
        n_markets = self.w.e.market_count
        markets = sorted({c.market_id for c in changes if c.account is None and c.market_id is not None})
        for mid in markets:
            if mid >= self.w.e.market_count:
                self.w.e.market_count = mid + 1
            self._load_market(mid, block)
        if self.w.e.market_count != n_markets:
            for mid in range(n_markets, self.w.e.market_count):
                self.w.e.members.setdefault(mid * 2, [])
                self.w.e.members.setdefault(mid * 2 + 1, [])
        pairs = {(c.account, c.market_id) for c in changes if c.account is not None} | self.dirty
        self.dirty = set()
        self._read_positions(sorted(pairs), block)
        self._apply_orders(changes, block)
        self.refresh(block)

    def _apply_orders(self, changes, block):
        w = self.w
        requested = [c.order_id for c in changes if c.name == "OrderRequested"]
        done = {c.order_id for c in changes if c.name in ("OrderExecuted", "OrderCancelled")}
        for oid in done:
            w.e.orders.pop(oid, None)
        # Read at `block`: an order requested and done within the range reads as gone.
        self._read_orders(sorted(set(requested) - done), block)
        if requested:
            w.e.order_count = max(w.e.order_count, *requested)
        if any(c.name == "OrderExpirySet" for c in changes):
            (w.e.order_expiry,) = self._call("order_expiry()", [], [], ["uint256"], block)
        tp_sl = {(c.account, c.market_id): c.block for c in changes if c.name == "TpSlSet"}
        if tp_sl:
            times = self._timestamps(set(tp_sl.values()))
            for key, blk in tp_sl.items():
                w.e.tp_sl_at[key] = times[blk]
