# pragma version 0.4.3
"""
@title MockAggregator
@notice DEVNET MOCK. A Chainlink-shaped price feed whose answer anyone can
        set; it exists because a real feed cannot run on a local devnet.
"""

decimals: public(uint8)
_round_id: uint80
_answer: int256
_started_at: uint256
_updated_at: uint256
_answered_in_round: uint80
# Tests of a broken feed: while set, latestRoundData reverts.
reverts: public(bool)

struct Round:
    answer: int256
    started_at: uint256
    updated_at: uint256
    answered_in_round: uint80

# every round set, by id, for getRoundData (the vault prices an epoch at the
# first round later than its last request: docs/lp-epochs.md)
_history: HashMap[uint80, Round]


@deploy
def __init__(decimals: uint8, initial_answer: int256):
    self.decimals = decimals
    self._set(initial_answer)


@external
def set_answer(answer: int256):
    """
    @notice A new round with `answer`, stamped with the current block time.
    """
    self._set(answer)


@external
def set_round_data(round_id: uint80, answer: int256, started_at: uint256, updated_at: uint256, answered_in_round: uint80):
    """
    @notice Set every field, for tests of stale, future and incomplete rounds.
    """
    self._round_id = round_id
    self._answer = answer
    self._started_at = started_at
    self._updated_at = updated_at
    self._answered_in_round = answered_in_round
    self._history[round_id] = Round(
        answer=answer, started_at=started_at, updated_at=updated_at, answered_in_round=answered_in_round
    )


@external
def set_reverts(reverts: bool):
    """
    @notice Make latestRoundData revert (a feed that is down), or stop it.
    """
    self.reverts = reverts


@external
@view
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    assert not self.reverts, "mock: feed down"
    return (self._round_id, self._answer, self._started_at, self._updated_at, self._answered_in_round)


@external
@view
def getRoundData(round_id: uint80) -> (uint80, int256, uint256, uint256, uint80):
    """
    @notice A past round as it was set (zeros for a round never set: an
            unsound round, where a real feed would revert).
    """
    assert not self.reverts, "mock: feed down"
    r: Round = self._history[round_id]
    return (round_id, r.answer, r.started_at, r.updated_at, r.answered_in_round)


@external
@view
def latestAnswer() -> int256:
    return self._answer


@internal
def _set(answer: int256):
    self._round_id += 1
    self._answer = answer
    self._started_at = block.timestamp
    self._updated_at = block.timestamp
    self._answered_in_round = self._round_id
    self._history[self._round_id] = Round(
        answer=answer, started_at=block.timestamp, updated_at=block.timestamp, answered_in_round=self._round_id
    )
