"""Mirrors of the devnet mocks: MockToken (snekmate erc20), MockAggregator and
MockSequencerUptimeFeed (a Feed: answer 0 up, 1 down; started_at the change)."""

from dataclasses import dataclass, field

from model.fixed_point import MAX_UINT256, check

ZERO = "0x" + "00" * 20


@dataclass
class Token:
    """snekmate erc20, as MockToken exposes it."""
    decimals: int
    balances: dict = field(default_factory=dict)
    allowances: dict = field(default_factory=dict)
    total_supply: int = 0

    def balance_of(self, a):
        return self.balances.get(a, 0)

    def mint(self, to, amount):
        check(to != ZERO, "erc20: mint to the zero address")
        self.total_supply += amount
        self.balances[to] = self.balance_of(to) + amount

    def approve(self, owner, spender, amount):
        self.allowances[(owner, spender)] = amount

    def transfer(self, frm, to, amount):
        """erc20._transfer"""
        check(frm != ZERO, "erc20: transfer from the zero address")
        check(to != ZERO, "erc20: transfer to the zero address")
        check(self.balance_of(frm) >= amount, "erc20: transfer amount exceeds balance")
        self.balances[frm] = self.balance_of(frm) - amount
        self.balances[to] = self.balance_of(to) + amount

    def transfer_from(self, spender, owner, to, amount):
        """erc20.transferFrom: allowance first, then the transfer."""
        current = self.allowances.get((owner, spender), 0)
        if current < MAX_UINT256:
            check(current >= amount, "erc20: insufficient allowance")
            self.allowances[(owner, spender)] = current - amount
        self.transfer(owner, to, amount)


@dataclass
class Feed:
    """MockAggregator"""
    decimals: int
    round_id: int = 0
    answer: int = 0
    started_at: int = 0
    updated_at: int = 0
    answered_in_round: int = 0
    reverts: bool = False  # MockAggregator.set_reverts: latestRoundData reverts
    # MockAggregator._history: round id -> (answer, started_at, updated_at, answered_in_round)
    history: dict = field(default_factory=dict)

    def set_reverts(self, reverts):
        self.reverts = reverts

    def set_status(self, answer, now):
        """MockSequencerUptimeFeed.set_status (a Feed of decimals 0)"""
        self.round_id += 1
        self.answer = answer
        self.started_at = now
        self.updated_at = now
        self.answered_in_round = self.round_id

    def set_answer(self, answer, now):
        """MockAggregator.set_answer"""
        self.round_id += 1
        self.answer = answer
        self.started_at = now
        self.updated_at = now
        self.answered_in_round = self.round_id
        self.history[self.round_id] = (answer, now, now, self.round_id)

    def set_round_data(self, round_id, answer, started_at, updated_at, answered_in_round):
        """MockAggregator.set_round_data"""
        self.round_id, self.answer, self.started_at = round_id, answer, started_at
        self.updated_at, self.answered_in_round = updated_at, answered_in_round
        self.history[round_id] = (answer, started_at, updated_at, answered_in_round)

    def latest_round_data(self):
        """MockAggregator.latestRoundData"""
        check(not self.reverts, "mock: feed down")
        return self.round_id, self.answer, self.started_at, self.updated_at, self.answered_in_round

    def get_round_data(self, round_id):
        """MockAggregator.getRoundData: zeros for a round never set"""
        check(not self.reverts, "mock: feed down")
        return (round_id, *self.history.get(round_id, (0, 0, 0, 0)))


def sequencer_feed(up_since):
    """MockSequencerUptimeFeed's constructor: up since `up_since`."""
    return Feed(decimals=0, round_id=1, answer=0, started_at=up_since, updated_at=up_since, answered_in_round=1)
