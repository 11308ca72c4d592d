"""A lab run played on the devnet contracts, call for call, at the lab's own
timestamps; the chain's events against the lab's.

    deployed = deploy_for(owner, scenario)              # BTC-PERP as the lab sets it up
    run = lab_run(scenario, node, traders)               # the lab, recording its calls
    chain_events = replay(node, deployed, run, keeper, lp)   # the same calls on chain

The lab's keeper is the keeper here: every call it made (feed rounds,
order executions, liquidations with their ADL targets, deleverage
continuations, TP/SL executions) is sent from the keeper's account, in
the lab's order, in one block per lab timestamp (anvil mines on demand at
that timestamp, its block gas limit raised so a timestamp's calls fit).
Traders are impersonated addresses (bots/devnet.py); their deposits and
order requests go in the block of the round they request in; the order
ids the chain gives them are mapped back to the lab's.

Devnet only; used by tests/risk/test_devnet_equivalence.py (`make
risk-check`).
"""

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from bots import rpc as R
from risk.lab import KEEPER, MAX_UINT, Run, UNIT, lp_deposit, market_config

COMPARED = ("PositionLiquidated", "InsuranceFundDrawn", "AutoDeleveraged", "BadDebtSocialized", "TpSlExecuted",
            "DeleveragePending")
ORDER_REQUESTED_TOPIC = R.ORDER_REQUESTED


def _call(signature, types, args):
    return "0x" + (keccak(text=signature)[:4] + encode(types, args)).hex()


def network_config(sc):
    """The `local` network entry with BTC-PERP alone, as the lab sets it,
    and the scenario's engine parameters (config/networks.yaml names them
    as Scenario.engine does)."""
    from scripts import config as cfg
    entry = dict(cfg.read()["local"])
    m = market_config(sc.market)
    m = {k: v for k, v in m.items() if v is not None}
    entry["markets"] = [m]
    entry.update(sc.engine)
    return entry


def lab_run(sc, t0, traders):
    """The lab's run of `sc` from `t0` with `traders` (ascending) as the book."""
    sc = sc.model_copy(update={"record": True})
    r = Run(sc, t0=t0, addresses=traders)
    if r.n_markets != 1:
        raise ValueError("the devnet replay plays one market")
    r.open_book()
    r.run_path()
    return r


def setup(node, p, run, owner, lp):
    """Before the lab's first timestamp: the LP's deposit, the fund, each
    trader's tokens (what its deposit call will take) and approval."""
    sc = run.sc
    token, engine, vault, fund = p.token.address, p.engine.address, p.vault.address, p.insurance_fund.address
    lp_amount = lp_deposit(sc, run.book) * UNIT
    p.token.mint(lp, lp_amount, sender=lp)
    p.token.approve(vault, lp_amount, sender=lp)
    if hasattr(p.vault, "requestDeposit"):
        # the vault's epochs (ERC-7540): request, a later round on every
        # feed, settle, claim (the lab deposits before its markets exist,
        # where the epoch settles at once; the shares are the same)
        from ape import chain
        p.vault.requestDeposit(lp_amount, lp, lp, sender=lp)
        chain.pending_timestamp = chain.blocks.head.timestamp + 1
        for feed in p.feeds:
            feed.set_answer(feed.latestRoundData()[1], sender=owner)
        p.vault.settle(sender=lp)
        p.vault.deposit(p.vault.claimableDepositRequest(0, lp), lp, sender=lp)
    else:
        p.vault.deposit(lp_amount, lp, sender=lp)
    if sc.book.insurance_fund:
        p.token.mint(fund, sc.book.insurance_fund * UNIT, sender=owner)
    deposits = {}
    for _, sender, verb, args in run.calls:
        if verb == "deposit":
            deposits[sender] = deposits.get(sender, 0) + args[0]
    txs = []
    for trader, amount in deposits.items():
        txs.append((trader, token, _call("mint(address,uint256)", ["address", "uint256"], [trader, amount])))
        txs.append((trader, token, _call("approve(address,uint256)", ["address", "uint256"], [engine, MAX_UINT])))
    node.set_balances(list(deposits))
    node.send_as(txs)


def _encode(verb, args, oids):
    if verb == "deposit":
        return R.calldata("deposit(uint256)", ["uint256"], list(args))
    if verb == "request_order":
        return R.encode_request_order(*args)
    if verb == "execute_order":
        return R.encode_execute_order(oids[args[0]])
    if verb == "set_tp_sl":
        return R.calldata("set_tp_sl(uint256,uint256,uint256)", ["uint256"] * 3, list(args))
    if verb == "liquidate":
        return R.encode_liquidate(*args)
    if verb == "deleverage":
        return R.encode_deleverage(*args)
    if verb == "execute_tp_sl":
        return R.encode_execute_tp_sl(*args)
    raise ValueError(f"no devnet encoding for {verb}")


def replay(node, p, run, keeper):
    """Send the lab's calls, one block per lab timestamp; return the
    engine's compared events from those blocks, decoded, in order, and the
    reasons of the orders it cancelled."""
    keeper = getattr(keeper, "address", keeper)
    rpc = node.rpc
    gas_limit = int(rpc.request("eth_getBlockByNumber", ["latest", False])["gasLimit"], 16)
    rpc.request("evm_setBlockGasLimit", [hex(2_000_000_000)])
    rpc.request("evm_setAutomine", [False])
    rpc.request("anvil_autoImpersonateAccount", [True])
    first_block = node.head() + 1
    lab_oid = 0
    oids = {}  # lab order id -> chain order id
    requested = {}  # trader -> lab order id
    cancelled = []  # the reasons of the orders the chain cancelled, in order
    try:
        groups = []
        for now, sender, verb, args in run.calls:
            if not groups or groups[-1][0] != now:
                groups.append((now, []))
            groups[-1][1].append((sender, verb, args))
        for now, calls in groups:
            hashes = []
            for sender, verb, args in calls:
                if verb == "feed":
                    mid, answer = args
                    frm, to, data = keeper, p.feeds[mid].address, R.calldata("set_answer(int256)", ["int256"], [answer])
                else:
                    if verb == "request_order":
                        lab_oid += 1
                        requested[sender] = lab_oid
                    frm = keeper if sender == KEEPER else sender
                    to, data = p.engine.address, _encode(verb, args, oids)
                h = rpc.request("eth_sendTransaction", [{"from": frm, "to": to, "data": data, "gas": hex(8_000_000),
                                                         "gasPrice": "0x0"}])
                hashes.append((h, verb))
            rpc.request("evm_mine", [now])
            receipts = node.receipts([h for h, _ in hashes], timeout=120)
            head = node.head()
            for (h, verb), rc in zip(hashes, receipts):
                assert int(rc["status"], 16) == 1, (f"{verb} at {now} reverted on chain: {_reason(rpc, h)!r} ({h}); "
                                                    f"orders the chain cancelled so far: {cancelled[:5]} of {len(cancelled)}")
                assert int(rc["blockNumber"], 16) == head, f"{verb} at {now} did not fit the block"
                for lg in rc["logs"]:
                    outcome = R.order_outcome(lg)
                    if outcome is not None and outcome[1] == "cancelled":
                        cancelled.append(outcome[2])
                    if lg["topics"] and lg["topics"][0] == ORDER_REQUESTED_TOPIC:
                        trader = to_checksum_address("0x" + lg["topics"][2][-40:])
                        oids[requested[trader]] = int(lg["topics"][1], 16)
    finally:
        rpc.request("anvil_autoImpersonateAccount", [False])
        rpc.request("evm_setAutomine", [True])
        rpc.request("evm_setBlockGasLimit", [hex(gas_limit)])
    return engine_events(p, first_block, node.head()), cancelled


def _reason(rpc, tx_hash):
    """The revert reason of a mined transaction (callTracer's output)."""
    try:
        trace = rpc.request("debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}])
        return R.revert_reason({"data": trace.get("output")}) or trace.get("error")
    except Exception as e:  # noqa: BLE001 - a diagnostic only
        return f"(no trace: {e})"


def engine_events(p, first, last):
    """The engine's COMPARED events in blocks first..last, as (name, fields)."""
    from ape import chain
    abis = [e for e in p.engine.contract_type.events if e.name in COMPARED]
    logs = chain.provider.make_request("eth_getLogs", [{"address": p.engine.address, "fromBlock": hex(first),
                                                        "toBlock": hex(last)}])
    decoded = chain.provider.network.ecosystem.decode_logs(logs, *abis)
    return [(lg.event_name, {k: (v.lower() if isinstance(v, str) else int(v)) for k, v in lg.event_arguments.items()})
            for lg in decoded]


def lab_cancelled(run):
    """The reasons of the orders the lab saw cancelled, in order."""
    return [f["reason"] for name, f in run.event_log if name == "OrderCancelled"]


def lab_events(run, keeper):
    """The lab's COMPARED events, addresses as the chain has them."""
    keeper = getattr(keeper, "address", keeper).lower()
    out = []
    for name, f in run.event_log:
        if name not in COMPARED:
            continue
        g = {k: (keeper if v == KEEPER else v.lower()) if isinstance(v, str) else v for k, v in f.items()}
        out.append((name, g))
    return out


def metrics(events):
    """What the issue names, from a list of events."""
    m = {"liquidations": 0, "bad_debt": 0, "fund_draws": [], "adl_fills": 0, "haircuts": 0, "socialized_loss": 0,
         "keeper_rewards": 0, "tp_sl": 0}
    for name, f in events:
        if name == "PositionLiquidated":
            m["liquidations"] += 1
            m["bad_debt"] += f["bad_debt"]
            m["keeper_rewards"] += f["keeper_reward"]
        elif name == "InsuranceFundDrawn":
            m["fund_draws"].append(f["amount"])
        elif name == "AutoDeleveraged":
            m["adl_fills"] += 1
            m["haircuts"] += f["haircut"]
        elif name == "BadDebtSocialized":
            m["socialized_loss"] += f["amount"]
        elif name == "TpSlExecuted":
            m["tp_sl"] += 1
            m["keeper_rewards"] += f["execution_fee"]
    return m

