# pragma version 0.4.3
"""
@title MockSequencerUptimeFeed
@notice DEVNET MOCK. Chainlink's L2 sequencer-uptime feed shape: answer 0 =
        the sequencer is up, 1 = down; startedAt = when the status last
        changed. Anyone can flip it; it exists because a devnet has no
        sequencer. Deployed only where config/networks.yaml asks for it
        (sequencer: {mock: true, ...}).
"""

decimals: public(uint8)
_round_id: uint80
_answer: int256
_started_at: uint256
_updated_at: uint256


@deploy
def __init__(up_since: uint256):
    """
    @notice Up, since `up_since` (a time before the grace period keeps the
            devnet trading from its first block).
    """
    self._round_id = 1
    self._started_at = up_since
    self._updated_at = up_since


@external
def set_status(answer: int256):
    """
    @notice A new round with status `answer` (0 up, 1 down), its startedAt
            and updatedAt stamped with the current block time.
    """
    self._round_id += 1
    self._answer = answer
    self._started_at = block.timestamp
    self._updated_at = block.timestamp


@external
def set_round_data(answer: int256, started_at: uint256):
    """
    @notice Set the status and startedAt directly (an invalid round has
            startedAt 0).
    """
    self._round_id += 1
    self._answer = answer
    self._started_at = started_at
    self._updated_at = block.timestamp


@external
@view
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    return (self._round_id, self._answer, self._started_at, self._updated_at, self._round_id)
