"""Batched JSON-RPC and the few ABI encodings the keeper needs.

The keeper's hot path (one block: read state, simulate a batch, send a
batch) goes over plain JSON-RPC batches rather than ape's per-call
machinery: 200 simulations are one HTTP request, not 200. ape still
connects to the network, resolves the account and signs.
"""

import dataclasses
import itertools

import requests
from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address

from model.positions import MarketParams as _MarketParams

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)


class RpcError(Exception):
    """The node could not be reached or answered garbage: back off and retry."""


class Reverted(Exception):
    """A call or a gas estimate reverted; `reason` is the revert string
    (None when the revert had none)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def selector(signature):
    return keccak(text=signature)[:4]


def topic(signature):
    return "0x" + keccak(text=signature).hex()


def calldata(signature, types, args):
    return "0x" + (selector(signature) + encode(types, args)).hex()


def revert_reason(error):
    """The revert string of a JSON-RPC error object (anvil and geth shapes)."""
    data = error.get("data")
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        raw = bytes.fromhex(data[2:])
        if raw[:4] == ERROR_SELECTOR:
            try:
                return decode(["string"], raw[4:])[0]
            except Exception:  # noqa: BLE001 - malformed revert data
                return None
        return None
    message = error.get("message", "")
    prefix = "execution reverted: "
    if message.startswith(prefix):
        return message[len(prefix):]
    return None


def is_revert(error):
    message = (error.get("message") or "").lower()
    return error.get("code") == 3 or "revert" in message


class Rpc:
    """A JSON-RPC client that sends lists of requests as one batch.

    `url` is one endpoint or a list: the first is the primary, the others
    fallbacks. When the current endpoint cannot be reached (connection
    refused, timeout, HTTP error, garbage), the same batch is tried on the
    next one, which then stays current; `on_failover(old, new, error)` is
    called at each switch. RpcError only when every endpoint failed."""

    def __init__(self, url, timeout=10.0, on_failover=None):
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("no RPC endpoint")
        self.current = 0
        self.timeout = timeout
        self.on_failover = on_failover
        self.session = requests.Session()
        self._ids = itertools.count(1)

    @property
    def url(self):
        return self.urls[self.current]

    def _post_one(self, url, payload):
        try:
            response = self.session.post(url, json=payload, timeout=self.timeout)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as exc:
            raise RpcError(f"{type(exc).__name__}: {exc}") from exc

    def _post(self, payload):
        errors = []
        for step in range(len(self.urls)):
            i = (self.current + step) % len(self.urls)
            try:
                answer = self._post_one(self.urls[i], payload)
            except RpcError as exc:
                errors.append(exc)
                continue
            if i != self.current:
                old, self.current = self.current, i
                if self.on_failover:
                    self.on_failover(self.urls[old], self.urls[i], errors[-1])
            return answer
        raise errors[0] if len(errors) == 1 else RpcError("; ".join(f"{u}: {e}" for u, e in zip(
            [self.urls[(self.current + k) % len(self.urls)] for k in range(len(errors))], errors)))

    def request(self, method, params):
        """One request; raises Reverted on a revert, RpcError otherwise."""
        (result,) = self.batch([(method, params)])
        if isinstance(result, Exception):
            raise result
        return result

    def batch(self, requests_):
        """[(method, params)] -> [result or Reverted/RpcError instance], in order."""
        if not requests_:
            return []
        ids = [next(self._ids) for _ in requests_]
        payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in zip(ids, requests_)]
        answer = self._post(payload)
        if not isinstance(answer, list):
            raise RpcError(f"batch answered with {answer!r:.200}")
        by_id = {a.get("id"): a for a in answer}
        out = []
        for i in ids:
            a = by_id.get(i)
            if a is None:
                out.append(RpcError("no answer in batch"))
            elif "error" in a:
                err = a["error"] or {}
                out.append(Reverted(revert_reason(err)) if is_revert(err) else RpcError(str(err)))
            else:
                out.append(a.get("result"))
        return out

    def calls(self, items, block="latest"):
        """[(to, data)] -> eth_call results (hex strings, or Reverted)."""
        results = self.batch([("eth_call", [{"to": to, "data": data}, block]) for to, data in items])
        for r in results:
            if isinstance(r, RpcError):
                raise r
        return results


# ---------------------------------------------------------------- engine ABI

def addr(word):
    return to_checksum_address(word)


POSITION = ["int256", "uint256", "uint256", "int256", "uint256", "uint256"]
# The engine's MarketParams struct: the feed, then unsigned integers, as
# many as the model's MarketParams has fields (a field added to both needs
# no change here).
MARKET_PARAMS = ["address"] + ["uint256"] * (len(dataclasses.fields(_MarketParams)) - 1)
MARKET_STATE = ["uint256", "uint256", "uint256", "uint256", "int256", "int256", "uint256", "int256", "uint256"]
ADL_PENDING = ["uint256", "uint256", "int256", "uint256", "address", "uint256", "uint256"]
ROUND = ["uint80", "int256", "uint256", "uint256", "uint80"]

# The events that change a position, and which topics hold (account, market).
POSITION_EVENTS = {
    topic("PositionOpened(address,uint256,int256,uint256,uint256,uint256,int256,int256,uint256)"): ("PositionOpened", ((1, 2),)),
    topic("PositionClosed(address,uint256,int256,uint256,int256,uint256,int256,uint256)"): ("PositionClosed", ((1, 2),)),
    topic("MarginChanged(address,uint256,int256,int256)"): ("MarginChanged", ((1, 2),)),
    topic("TpSlSet(address,uint256,uint256,uint256)"): ("TpSlSet", ((1, 2),)),
    topic("TpSlExecuted(address,uint256,address,uint256,uint256)"): ("TpSlExecuted", ((1, 2),)),
    topic("PositionLiquidated(address,uint256,int256,uint256,uint256,uint256,uint256)"): ("PositionLiquidated", ((1, 2),)),
    topic("AutoDeleveraged(address,address,uint256,int256,uint256,uint256)"): ("AutoDeleveraged", ((2, 3),)),
}
TP_SL_SET = topic("TpSlSet(address,uint256,uint256,uint256)")
MARKET_EVENTS = {
    topic("MarketAdded(uint256,address)"): "MarketAdded",
    topic("MarketParamsSet(uint256)"): "MarketParamsSet",
}
# Order events (PerpOrders, emitted by the engine's address): order id in topic 1.
ORDER_REQUESTED = topic("OrderRequested(uint256,address,uint256,int256,int256,uint256)")
ORDER_EXECUTED = topic("OrderExecuted(uint256,uint256)")
ORDER_CANCELLED = topic("OrderCancelled(uint256,string)")
ORDER_EVENTS = {ORDER_REQUESTED: "OrderRequested", ORDER_EXECUTED: "OrderExecuted", ORDER_CANCELLED: "OrderCancelled"}
ORDER_EXPIRY_SET = topic("OrderExpirySet(uint256)")
# positions.Order as get_order returns it: account, market_id, size_delta,
# margin_delta, acceptable_price, requested_at, reduce_only, trading_fee,
# execution_fee, escrow, expires_at (each order's own deadline)
ORDER = ["address", "uint256", "int256", "int256", "uint256", "uint256", "bool", "uint256", "uint256", "uint256",
         "uint256"]


def encode_liquidate(account, market_id, targets):
    return calldata("liquidate(address,uint256,address[])", ["address", "uint256", "address[]"], [account, market_id, list(targets)])


def encode_deleverage(market_id, targets):
    return calldata("deleverage(uint256,address[])", ["uint256", "address[]"], [market_id, list(targets)])


def encode_execute_tp_sl(account, market_id):
    return calldata("execute_tp_sl(address,uint256)", ["address", "uint256"], [account, market_id])


def encode_execute_order(order_id):
    return calldata("execute_order(uint256)", ["uint256"], [order_id])


def encode_request_order(market_id, size_delta, margin_delta, acceptable_price):
    return calldata("request_order(uint256,int256,int256,uint256)", ["uint256", "int256", "int256", "uint256"],
                    [market_id, size_delta, margin_delta, acceptable_price])


def order_outcome(log):
    """(order_id, "executed", price) or (order_id, "cancelled", reason) of an
    OrderExecuted / OrderCancelled log (JSON-RPC shape), else None."""
    topics = log.get("topics") or []
    if not topics or topics[0] not in (ORDER_EXECUTED, ORDER_CANCELLED):
        return None
    oid = int(topics[1], 16)
    data = bytes.fromhex(log["data"][2:])
    if topics[0] == ORDER_EXECUTED:
        return oid, "executed", decode(["uint256"], data)[0]
    return oid, "cancelled", decode(["string"], data)[0]


LIQUIDATED = topic("PositionLiquidated(address,uint256,int256,uint256,uint256,uint256,uint256)")
TP_SL_EXECUTED = topic("TpSlExecuted(address,uint256,address,uint256,uint256)")
# The top-up of a liquidation's or deleverage's reward to the engine's
# floor (min_keeper_reward): from the insurance fund, then the vault.
KEEPER_PAID = topic("KeeperPaid(address,uint256,uint256)")


# ---------------------------------------------------------------- vault ABI (LP epochs, ERC-7540)

# LiquidityVault.Epoch as get_epoch returns it: deposit_assets,
# redeem_shares, last_request, settled_at, deposit_shares, redeem_filled,
# redeem_assets (the model's liquidity_vault.Epoch, field for field).
EPOCH = ["uint256"] * 7
# EpochSettled(epoch indexed, settler indexed, entry_assets, exit_assets,
# deposit_assets, deposit_shares, redeem_shares, redeem_filled,
# redeem_assets, fee): the settler's fee is data word 7.
EPOCH_SETTLED = topic("EpochSettled(uint256,address,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256)")
EPOCH_SETTLED_FEE_WORD = 7


def encode_settle():
    return calldata("settle()", [], [])
