# pragma version 0.4.3
"""
@title TimelockController
@notice snekmate 0.1.2's `timelock_controller`, deployed as is: the owner of
        PerpEngine, LiquidityVault and InsuranceFund on every deployment
        (docs/trust.md). Proposers schedule an operation at least
        `get_minimum_delay` seconds ahead, executors run it once it is
        ready, cancellers drop it while it waits. The contract administers
        itself: granting or revoking a role and changing the delay are
        operations on itself, under the same delay. Nothing here is
        Backstop's own code: this file only instantiates snekmate's module
        (as snekmate's own mocks/timelock_controller_mock.vy does).
"""

from snekmate.auth import access_control
from snekmate.governance import timelock_controller

initializes: access_control
initializes: timelock_controller[access_control := access_control]

exports: timelock_controller.__interface__


@deploy
@payable
def __init__(
    minimum_delay_: uint256,
    proposers_: DynArray[address, timelock_controller._DYNARRAY_BOUND],
    executors_: DynArray[address, timelock_controller._DYNARRAY_BOUND],
    admin_: address,
):
    """
    @notice See snekmate's timelock_controller.__init__: proposers also get
            the canceller role, the contract administers itself, and the
            deployer keeps no admin right (`admin_` zero).
    """
    access_control.__init__()
    timelock_controller.__init__(minimum_delay_, proposers_, executors_, admin_)
