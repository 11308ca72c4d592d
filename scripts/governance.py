"""Owner calls through the TimelockController that owns engine, vault and fund.

Every owner verb of a deployment is an operation of the timelock
(snekmate 0.1.2's `timelock_controller`, contracts/TimelockController.vy):
a proposer schedules it at least `get_minimum_delay` seconds ahead, an
executor runs it once ready. Tests, the demo and the scripts use one helper:

    govern(timelock, target, calldata, proposer)        # schedule + execute
    governed(timelock, contract, "set_max_profit", x, sender=proposer)

On the devnet the delay is 0 and the deployer holds both roles, so an
operation is scheduled and executed in two consecutive transactions. With
a delay, `govern` waits it out only on a local chain (it moves the chain's
clock, `wait=True`); elsewhere it schedules and returns the operation for
a later `execute_ready` (nobody can make a public chain's clock jump).

`OWNER_VERBS` names the verbs that need the owner, as the model names them
(engine verbs bare, vault and fund verbs prefixed): scripts/twin.py and the
state machine's backends route them through the timelock when the sender
holds the proposer role.
"""

import itertools
import os
from dataclasses import dataclass

from eth_utils import keccak

ZERO32 = b"\x00" * 32
PROPOSER_ROLE = keccak(text="PROPOSER_ROLE")
EXECUTOR_ROLE = keccak(text="EXECUTOR_ROLE")
CANCELLER_ROLE = keccak(text="CANCELLER_ROLE")
ZERO_ADDRESS = "0x" + "00" * 20

# Owner-only verbs (ownable._check_owner) of the engine (PerpAdmin), the
# vault and the insurance fund, and pause/unpause, which the owner may take
# as well as the pauser (through the timelock's delay: the pauser is the
# brake that acts at once).
OWNER_VERBS = frozenset({
    "transfer_ownership", "initialize", "add_market", "set_market_params", "set_order_expiry", "set_borrow_rate", "set_max_profit",
    "set_keeper_reward", "set_pauser", "pause", "unpause", "set_oracle", "set_sequencer_feed",
    "vault.set_settle_fee", "vault.transfer_ownership",
    "fund.set_floor", "fund.withdraw_surplus", "fund.transfer_ownership",
})

_salts = itertools.count(1)


def next_salt():
    """A salt no earlier operation of this process used: the same call
    scheduled twice (say after a failed execution) is a new operation."""
    return keccak(os.getpid().to_bytes(8, "big") + next(_salts).to_bytes(8, "big"))


@dataclass
class Operation:
    target: str
    calldata: bytes
    salt: bytes
    ready_at: int


def _addr(x):
    return str(getattr(x, "address", x))


def schedule(timelock, target, calldata, proposer, delay=None, salt=None):
    """Schedule one call (no value, no predecessor); returns the Operation."""
    from ape import chain

    delay = int(timelock.get_minimum_delay()) if delay is None else delay
    salt = salt or next_salt()
    receipt = timelock.schedule(_addr(target), 0, bytes(calldata), ZERO32, salt, delay, sender=proposer)
    ts = getattr(receipt, "timestamp", None) or chain.blocks.head.timestamp
    return Operation(_addr(target), bytes(calldata), salt, ts + delay)


def execute(timelock, op, executor):
    """Execute a ready operation; reverts with the target's own reason."""
    return timelock.execute(op.target, 0, op.calldata, ZERO32, op.salt, sender=executor)


def govern(timelock, target, calldata, proposer, executor=None, delay=None, wait=True):
    """Schedule `calldata` to `target` through `timelock` and execute it.

    With a delay, `wait=True` moves a local chain's clock past it first; the
    receipt of `execute` is returned (a revert raises with the target's
    reason: snekmate bubbles it up)."""
    from ape import chain

    op = schedule(timelock, target, calldata, proposer, delay)
    if op.ready_at > chain.blocks.head.timestamp:
        if not wait:
            return op
        chain.pending_timestamp = op.ready_at
    return execute(timelock, op, executor or proposer)


def governed(timelock, contract, method, *args, sender, executor=None, delay=None):
    """govern() of `contract.method(*args)`, its calldata encoded by ape."""
    calldata = getattr(contract, method).encode_input(*args)
    return govern(timelock, contract, calldata, sender, executor=executor, delay=delay)


def is_proposer(timelock, account):
    return bool(timelock.hasRole(PROPOSER_ROLE, _addr(account)))


def members(names, deployer):
    """Config role members ('deployer', 'anyone', 0x...) as addresses."""
    out = []
    for n in names:
        a = _addr(deployer) if n == "deployer" else ZERO_ADDRESS if n == "anyone" else n
        if a.lower() not in {x.lower() for x in out}:
            out.append(a)
    return out


def hand_over(timelock, engine, vault, fund, deployer, governance):
    """Make the timelock the owner of engine, vault and fund, then give it
    the configured roles and delay; the deployer's own rights end here
    unless the config names it.

    The timelock was deployed with delay 0 and the deployer as its only
    proposer and executor. The deployer nominates it (engine and fund are
    two-step, the vault one step), and one batch operation of the timelock
    accepts both nominations, grants the configured roles, revokes the
    deployer's where the config does not name it, and sets the configured
    delay last. Returns the batch's execute receipt."""
    engine.transfer_ownership(timelock, sender=deployer)
    fund.transfer_ownership(timelock, sender=deployer)
    vault.transfer_ownership(timelock, sender=deployer)
    calls = [(engine, engine.accept_ownership.encode_input()), (fund, fund.accept_ownership.encode_input())]
    me = _addr(deployer)
    wanted = {
        PROPOSER_ROLE: members(governance["proposers"], deployer),
        EXECUTOR_ROLE: members(governance["executors"], deployer),
        # snekmate makes every proposer a canceller too
        CANCELLER_ROLE: members(list(governance["proposers"]) + list(governance.get("cancellers") or []), deployer),
    }
    for role, accounts in wanted.items():
        for a in accounts:
            if a.lower() != me.lower():
                calls.append((timelock, timelock.grantRole.encode_input(role, a)))
        if me.lower() not in {a.lower() for a in accounts}:
            calls.append((timelock, timelock.revokeRole.encode_input(role, me)))
    if governance["min_delay"]:
        calls.append((timelock, timelock.update_delay.encode_input(governance["min_delay"])))
    targets = [_addr(t) for t, _ in calls]
    payloads = [bytes(c) for _, c in calls]
    salt = next_salt()
    timelock.schedule_batch(targets, [0] * len(calls), payloads, ZERO32, salt, 0, sender=deployer)
    return timelock.execute_batch(targets, [0] * len(calls), payloads, ZERO32, salt, sender=deployer)
