"""Helpers shared by the engine, vault and insurance-fund unit tests.

Each helper acts on chain and on the model together (at the twin's clock),
or checks what `Twin.assert_same` does not read: roles, parameters and the
insurance fund's floor.
"""

from dataclasses import astuple, replace

from ape import chain

from scripts.twin import _addr

USDC = 10**6
WAD = 10**18
SCALE = 10**30  # 10**(36 - 6): size * price / SCALE is token units
ZERO = "0x" + "00" * 20
MAX_UINT = 2**256 - 1


def ceil_div(a, b):
    """ceil(a / b) for b > 0, written independently of model/fixed_point.py."""
    return -((-a) // b)


def btc(answer_usd):
    """A devnet feed answer (8 decimals) from whole dollars."""
    return answer_usd * 10**8


def params(twin, mid=0, **changes):
    """Market `mid`'s current parameters as an ABI tuple, with `changes`."""
    return replace(twin.w.e.params[mid], **changes).as_tuple()


def expect_revert(twin, sender, verb, *args, reason, then=None):
    """The call reverts with `reason` on chain and in the model, and the two
    still agree on every stored value afterwards (nothing changed).

    `then` runs between the two: after a "bad price" revert the views that
    `assert_same` reads would revert too, so it restores a valid answer."""
    ok, got = twin.act(sender, verb, *args)
    assert not ok, f"{verb}{args} succeeded; expected {reason!r}"
    assert got == reason, f"{verb}{args} reverted {got!r}; expected {reason!r}"
    if then is not None:
        then()
    twin.assert_same()


def expect_ok(twin, sender, verb, *args):
    ok, got = twin.act(sender, verb, *args)
    assert ok, f"{verb}{args} reverted {got!r}"


def assert_roles_same(twin):
    """Owners, pauser, pause flag, market parameters and the fund's floor:
    the stored values `Twin.assert_same` does not compare."""
    e, f, w = twin.p.engine, twin.p.insurance_fund, twin.w
    assert e.owner() == w.e.owner
    assert e.pending_owner() == w.e.pending_owner
    assert e.pauser() == w.e.pauser
    assert e.paused() == w.e.paused
    assert e.vault() == w.e.vault and e.insurance_fund() == w.e.insurance_fund
    assert e.market_count() == w.e.market_count
    for mid in range(w.e.market_count):
        on_chain = tuple(str(v) if k == 0 else int(v) for k, v in enumerate(e.market_params(mid)))
        assert on_chain == w.e.params[mid].as_tuple(), f"market {mid} parameters differ"
    assert f.owner() == w.fund_owner
    assert f.pending_owner() == w.fund_pending_owner
    assert f.balance_floor() == w.fund_floor


def set_round(twin, mid, sender, *, round_id, answer, started_at, updated_at, answered_in_round):
    """MockAggregator.set_round_data on market `mid`'s feed, on both."""
    twin._next_time()
    feed = twin.p.feeds[mid]
    feed.set_round_data(round_id, answer, started_at, updated_at, answered_in_round, sender=sender)
    twin.w.feeds[feed.address].set_round_data(round_id, answer, started_at, updated_at, answered_in_round)


def deploy_feed(twin, deployer, decimals, answer):
    """A new MockAggregator on chain, registered with the model at the same round."""
    from ape import project

    twin._next_time()
    feed = deployer.deploy(project.MockAggregator, decimals, answer)
    f = twin.w.add_feed(feed.address, decimals, answer)
    f.set_round_data(*(int(v) for v in feed.latestRoundData()))
    return feed


def restamp_feed(twin, feed, sender):
    """A new round at `feed`'s current answer, on both: Twin.restamp for a
    feed deployed by a test (deploy_feed), which the twin's protocol does
    not list."""
    t = twin._next_time()
    answer = twin.w.feeds[feed.address].answer
    feed.set_answer(answer, sender=sender)
    twin.w.set_answer(feed.address, answer, now=t)


def next_timestamp(twin):
    """The block time the twin's next action will run at."""
    return max(twin.now, chain.blocks.head.timestamp) + 1


def transfer_tokens(twin, sender, to, amount):
    """A plain token transfer (a donation), on both."""
    twin._next_time()
    twin.p.token.transfer(to, amount, sender=sender)
    twin.w.token.transfer(_addr(sender), _addr(to), amount)


def mint_tokens(twin, to, amount, sender):
    """MockToken's open faucet, on both."""
    twin._next_time()
    twin.p.token.mint(to, amount, sender=sender)
    twin.w.mint(_addr(to), amount)


def events(twin, name):
    """The model's events called `name`, as dicts."""
    return [fields for n, fields in twin.w.events if n == name]


def position(twin, account, mid=0):
    """The stored position on chain, as a tuple of ints, after checking the
    model holds the same."""
    on_chain = tuple(int(x) for x in twin.p.engine.get_position(account, mid))
    assert on_chain == astuple(twin.w.view("get_position", _addr(account), mid))
    return on_chain



# ---------------------------------------------------------------- orders


def execution_fee(twin, mid=0):
    """Market `mid`'s execution fee (1 USDC on the devnet): what every order
    pays its executor, executed or cancelled."""
    return twin.w.e.params[mid].execution_fee


def free(twin, account):
    """Free collateral on chain, after checking the model holds the same."""
    on_chain = twin.p.engine.free_collateral(account)
    assert on_chain == twin.w.e.free.get(_addr(account), 0)
    return on_chain


def expect_order_ok(twin, sender, mid, size, margin, acceptable, executor):
    """request_order, a later round at the same price, execute_order by
    `executor`: the order executes on both (OrderExecuted at the market's
    price), and the executor earns the execution fee. Returns the order id."""
    fee = execution_fee(twin, mid)
    ok, reason, oid = twin.request(sender, mid, size, margin, acceptable)
    assert ok, f"request_order{(mid, size, margin, acceptable)} reverted {reason!r}"
    twin.restamp(mid, executor)
    paid = free(twin, executor)
    status, reason = twin.execute(executor, oid)
    assert status == "executed", f"order {oid} {status}: {reason!r}"
    feed = twin.p.feeds[mid]
    price = feed.latestRoundData()[1] * 10 ** (18 - feed.decimals())
    assert twin.w.events[-1] == ("OrderExecuted", {"order_id": oid, "price": price})
    if _addr(executor) != _addr(sender):
        assert free(twin, executor) - paid == fee
    return oid


def expect_order_refused(twin, sender, mid, size, margin, acceptable, executor, *, reason, at=None):
    """The order is refused with exactly `reason`: either request_order
    reverts with it (nothing changes), or the order is requested and its
    execution at a later round cancels it with OrderCancelled(order_id,
    reason) (the escrow comes back less the execution fee, which the executor
    earns; the position and the market are as they were). `at` ("request" or
    "execution") pins where. Then chain and model are compared. Returns
    where it was refused."""
    e = twin.p.engine
    pos0, market0 = position(twin, sender, mid), tuple(e.market_state(mid))
    free0, paid0 = free(twin, sender), free(twin, executor)
    ok, got, oid = twin.request(sender, mid, size, margin, acceptable)
    if not ok:
        stage = "request"
        assert free(twin, sender) == free0
    else:
        stage = "execution"
        fee = e.get_order(oid).execution_fee
        twin.restamp(mid, executor)
        status, got = twin.execute(executor, oid)
        assert status == "cancelled", f"order {oid} {status} ({got!r}); expected a cancellation {reason!r}"
        assert twin.w.events[-1] == ("OrderCancelled", {"order_id": oid, "reason": got})
        assert int(e.get_order(oid).account, 16) == 0, "a cancelled order is deleted"
        if _addr(executor) != _addr(sender):
            assert free(twin, sender) == free0 - fee
            assert free(twin, executor) == paid0 + fee
        else:
            assert free(twin, sender) == free0
    assert got == reason, (
        f"order {(mid, size, margin, acceptable)} refused at {stage} with {got!r}; expected {reason!r}")
    if at is not None:
        assert stage == at, f"refused at {stage}; expected at {at}"
    assert position(twin, sender, mid) == pos0
    assert tuple(e.market_state(mid)) == market0
    twin.assert_same()
    return stage


def no_fallback(twin, owner, mid=0):
    """Unregister market `mid`'s devnet fallback feed (config/networks.yaml
    gives BTC-PERP one), on chain and model: for tests that break the
    market's only feed and expect "bad price"."""
    expect_ok(twin, owner, "set_oracle", mid, (1, 2**128 - 1, 3_000, ZERO, 0))
