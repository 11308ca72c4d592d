# pragma version 0.4.3
"""
@title BackstopLens
@notice Read-only batch reader: many engine, vault, insurance-fund, feed and
        token values for a list of accounts in ONE eth_call. It holds no
        state and calls only view functions, so it can be deployed anywhere
        (or used through eth_call state overrides) and pointed at any engine.
        The differential property tests read the whole protocol through
        `snapshot` after every step; the keeper can scan a side of a market
        with `side_positions`, or check a list of accounts with `positions`.
@dev Every function reverts where an engine view it calls reverts (a bad or
     missing price makes `equity` and `traders_claim` revert), and with
     "lens: too many ..." when a result would not fit its bound. Views of a
     position (equity, prices, score, funding) are read only for open
     positions and only when `with_views` is set: they cost most of the gas.
"""

from ethereum.ercs import IERC20

# ---------------------------------------------------------------- constants

MAX_ACCOUNTS: constant(uint256) = 256
MAX_MARKETS: constant(uint256) = 64
MAX_SIDE_PAGE: constant(uint256) = 1000
# `snapshot` bounds: a whole small deployment in one call.
SNAP_ACCOUNTS: constant(uint256) = 64
SNAP_MARKETS: constant(uint256) = 8
SNAP_POSITIONS: constant(uint256) = 512  # SNAP_ACCOUNTS * SNAP_MARKETS
SNAP_MEMBERS: constant(uint256) = 2048

# ---------------------------------------------------------------- structs (engine ABI)

struct Position:
    size: int256
    entry_price: uint256
    margin: uint256
    funding_index: int256
    take_profit: uint256
    stop_loss: uint256

struct MarketParams:
    feed: address
    imf: uint256
    mmf: uint256
    liq_fee: uint256
    keeper_share: uint256
    trading_fee: uint256
    insurance_share: uint256
    funding_k: uint256
    max_funding_rate: uint256
    max_price_age: uint256
    max_open_interest: uint256
    min_margin: uint256
    execution_fee: uint256

struct MarketState:
    long_oi: uint256
    short_oi: uint256
    long_cost: uint256
    short_cost: uint256
    sum_size_index: int256
    funding_index: int256
    last_funding_time: uint256
    borrow_index: int256
    borrow_rate: uint256

struct AdlPending:
    remaining: uint256
    bad_debt: uint256
    bankrupt_size: int256
    size_left: uint256
    bankrupt: address
    bankruptcy_price: uint256
    price: uint256

# ---------------------------------------------------------------- structs (lens results)

struct Totals:
    market_count: uint256
    paused: bool
    owner: address
    pauser: address
    token: address
    vault: address
    insurance_fund: address
    engine_balance: uint256
    vault_cash: uint256
    fund_balance: uint256
    vault_total_supply: uint256
    vault_total_assets: uint256
    vault_free_cash: uint256
    traders_claim: int256
    max_profit: uint256
    total_cost: uint256
    traders_reserve: uint256
    traders_gain: uint256
    vault_entry_assets: uint256
    min_keeper_reward: uint256
    min_notional: uint256

struct FeedRound:
    round_id: uint80
    answer: int256
    started_at: uint256
    updated_at: uint256
    answered_in_round: uint80

struct MarketView:
    params: MarketParams
    state: MarketState
    pending: AdlPending[4]  # the engine's queue, oldest first (MAX_ADL_JOBS)
    feed: FeedRound
    long_count: uint256
    short_count: uint256

struct AccountView:
    account: address
    token_balance: uint256
    free_collateral: uint256
    vault_shares: uint256

struct PositionView:
    account: address
    market_id: uint256
    position: Position
    equity: int256
    liquidatable: bool
    liquidation_price: uint256
    bankruptcy_price: uint256
    adl_score: uint256
    funding_owed: int256

# ---------------------------------------------------------------- interfaces

interface Engine:
    def market_count() -> uint256: view
    def paused() -> bool: view
    def owner() -> address: view
    def pauser() -> address: view
    def COLLATERAL() -> address: view
    def vault() -> address: view
    def insurance_fund() -> address: view
    def traders_claim() -> int256: view
    def traders_gain() -> uint256: view
    def traders_reserve() -> uint256: view
    def max_profit() -> uint256: view
    def total_cost() -> uint256: view
    def min_keeper_reward() -> uint256: view
    def min_notional() -> uint256: view
    def market_params(market_id: uint256) -> MarketParams: view
    def market_state(market_id: uint256) -> MarketState: view
    def adl_pending(market_id: uint256, index: uint256) -> AdlPending: view
    def position_count(market_id: uint256, is_long: bool) -> uint256: view
    def position_at(market_id: uint256, is_long: bool, index: uint256) -> address: view
    def get_position(account: address, market_id: uint256) -> Position: view
    def free_collateral(account: address) -> uint256: view
    def equity(account: address, market_id: uint256) -> int256: view
    def is_liquidatable(account: address, market_id: uint256) -> bool: view
    def liquidation_price(account: address, market_id: uint256) -> uint256: view
    def bankruptcy_price(account: address, market_id: uint256) -> uint256: view
    def adl_score(account: address, market_id: uint256) -> uint256: view
    def funding_owed(account: address, market_id: uint256) -> int256: view

interface Vault:
    def totalSupply() -> uint256: view
    def balanceOf(owner: address) -> uint256: view
    def totalAssets() -> uint256: view
    def free_cash() -> uint256: view
    def entry_assets() -> uint256: view

interface Feed:
    def latestRoundData() -> (uint80, int256, uint256, uint256, uint80): view


# ---------------------------------------------------------------- external


@external
@view
def totals(engine: Engine) -> Totals:
    """
    @notice Engine-wide values: markets, pause, roles, wiring, the token
            balances of engine, vault and fund, the vault's share supply and
            valuation, and the traders' net claim on the vault.
    """
    return self._totals(engine)


@external
@view
def markets(engine: Engine) -> DynArray[MarketView, MAX_MARKETS]:
    """
    @notice Every market's parameters, stored state, pending ADL, latest
            feed round and side-set sizes, by market id.
    """
    out: DynArray[MarketView, MAX_MARKETS] = []
    n: uint256 = staticcall engine.market_count()
    for mid: uint256 in range(MAX_MARKETS):
        if mid >= n:
            break
        out.append(self._market(engine, mid))
    return out


@external
@view
def accounts(engine: Engine, accounts: DynArray[address, MAX_ACCOUNTS]) -> DynArray[AccountView, MAX_ACCOUNTS]:
    """
    @notice Token balance, free collateral and vault shares of each account.
    """
    token: IERC20 = IERC20(staticcall engine.COLLATERAL())
    vault: Vault = Vault(staticcall engine.vault())
    out: DynArray[AccountView, MAX_ACCOUNTS] = []
    for a: address in accounts:
        out.append(self._account(engine, token, vault, a))
    return out


@external
@view
def positions(
    engine: Engine, market_id: uint256, accounts: DynArray[address, MAX_ACCOUNTS], with_views: bool
) -> DynArray[PositionView, MAX_ACCOUNTS]:
    """
    @notice The stored position of each account in one market (size 0 when
            none), with its health views when `with_views` and open.
    """
    out: DynArray[PositionView, MAX_ACCOUNTS] = []
    for a: address in accounts:
        out.append(self._position(engine, a, market_id, with_views))
    return out


@external
@view
def members(engine: Engine, market_id: uint256, is_long: bool, start: uint256, count: uint256) -> DynArray[address, MAX_SIDE_PAGE]:
    """
    @notice A page of one side's open-position set, in the engine's order.
    """
    out: DynArray[address, MAX_SIDE_PAGE] = []
    n: uint256 = staticcall engine.position_count(market_id, is_long)
    for i: uint256 in range(MAX_SIDE_PAGE):
        if i >= count or start + i >= n:
            break
        out.append(staticcall engine.position_at(market_id, is_long, start + i))
    return out


@external
@view
def side_positions(
    engine: Engine, market_id: uint256, is_long: bool, start: uint256, count: uint256, with_views: bool
) -> DynArray[PositionView, MAX_ACCOUNTS]:
    """
    @notice A page of one side's open positions with their views: what a
            keeper scans for liquidatable and triggered positions.
    """
    out: DynArray[PositionView, MAX_ACCOUNTS] = []
    n: uint256 = staticcall engine.position_count(market_id, is_long)
    for i: uint256 in range(MAX_ACCOUNTS):
        if i >= count or start + i >= n:
            break
        a: address = staticcall engine.position_at(market_id, is_long, start + i)
        out.append(self._position(engine, a, market_id, with_views))
    return out


@external
@view
def snapshot(
    engine: Engine, accounts: DynArray[address, SNAP_ACCOUNTS], with_views: bool
) -> (
    Totals,
    DynArray[MarketView, SNAP_MARKETS],
    DynArray[AccountView, SNAP_ACCOUNTS],
    DynArray[PositionView, SNAP_POSITIONS],
    DynArray[address, SNAP_MEMBERS],
):
    """
    @notice Everything at once: totals, every market, every account, every
            (account, market) position in market-major order, and every side
            set concatenated (market 0 long, market 0 short, market 1 long,
            ...; split them with the counts in each MarketView).
    """
    n: uint256 = staticcall engine.market_count()
    assert n <= SNAP_MARKETS, "lens: too many markets"
    token: IERC20 = IERC20(staticcall engine.COLLATERAL())
    vault: Vault = Vault(staticcall engine.vault())
    mkts: DynArray[MarketView, SNAP_MARKETS] = []
    accts: DynArray[AccountView, SNAP_ACCOUNTS] = []
    poss: DynArray[PositionView, SNAP_POSITIONS] = []
    mems: DynArray[address, SNAP_MEMBERS] = []
    for a: address in accounts:
        accts.append(self._account(engine, token, vault, a))
    for mid: uint256 in range(SNAP_MARKETS):
        if mid >= n:
            break
        mv: MarketView = self._market(engine, mid)
        mkts.append(mv)
        for a: address in accounts:
            poss.append(self._position(engine, a, mid, with_views))
        assert len(mems) + mv.long_count + mv.short_count <= SNAP_MEMBERS, "lens: too many members"
        for i: uint256 in range(SNAP_MEMBERS):
            if i >= mv.long_count:
                break
            mems.append(staticcall engine.position_at(mid, True, i))
        for i: uint256 in range(SNAP_MEMBERS):
            if i >= mv.short_count:
                break
            mems.append(staticcall engine.position_at(mid, False, i))
    return (self._totals(engine), mkts, accts, poss, mems)


# ---------------------------------------------------------------- internal


@internal
@view
def _totals(engine: Engine) -> Totals:
    token: IERC20 = IERC20(staticcall engine.COLLATERAL())
    vault: address = staticcall engine.vault()
    fund: address = staticcall engine.insurance_fund()
    return Totals(
        market_count=staticcall engine.market_count(),
        paused=staticcall engine.paused(),
        owner=staticcall engine.owner(),
        pauser=staticcall engine.pauser(),
        token=token.address,
        vault=vault,
        insurance_fund=fund,
        engine_balance=staticcall token.balanceOf(engine.address),
        vault_cash=staticcall token.balanceOf(vault),
        fund_balance=staticcall token.balanceOf(fund),
        vault_total_supply=staticcall Vault(vault).totalSupply(),
        vault_total_assets=staticcall Vault(vault).totalAssets(),
        vault_free_cash=staticcall Vault(vault).free_cash(),
        traders_claim=staticcall engine.traders_claim(),
        max_profit=staticcall engine.max_profit(),
        total_cost=staticcall engine.total_cost(),
        traders_reserve=staticcall engine.traders_reserve(),
        traders_gain=staticcall engine.traders_gain(),
        vault_entry_assets=staticcall Vault(vault).entry_assets(),
        min_keeper_reward=staticcall engine.min_keeper_reward(),
        min_notional=staticcall engine.min_notional(),
    )


@internal
@view
def _market(engine: Engine, mid: uint256) -> MarketView:
    p: MarketParams = staticcall engine.market_params(mid)
    r: FeedRound = empty(FeedRound)
    (r.round_id, r.answer, r.started_at, r.updated_at, r.answered_in_round) = staticcall Feed(p.feed).latestRoundData()
    return MarketView(
        params=p,
        state=staticcall engine.market_state(mid),
        pending=[
            staticcall engine.adl_pending(mid, 0),
            staticcall engine.adl_pending(mid, 1),
            staticcall engine.adl_pending(mid, 2),
            staticcall engine.adl_pending(mid, 3),
        ],
        feed=r,
        long_count=staticcall engine.position_count(mid, True),
        short_count=staticcall engine.position_count(mid, False),
    )


@internal
@view
def _account(engine: Engine, token: IERC20, vault: Vault, a: address) -> AccountView:
    return AccountView(
        account=a,
        token_balance=staticcall token.balanceOf(a),
        free_collateral=staticcall engine.free_collateral(a),
        vault_shares=staticcall vault.balanceOf(a),
    )


@internal
@view
def _position(engine: Engine, a: address, mid: uint256, with_views: bool) -> PositionView:
    v: PositionView = empty(PositionView)
    v.account = a
    v.market_id = mid
    v.position = staticcall engine.get_position(a, mid)
    if with_views and v.position.size != 0:
        v.equity = staticcall engine.equity(a, mid)
        v.liquidatable = staticcall engine.is_liquidatable(a, mid)
        v.liquidation_price = staticcall engine.liquidation_price(a, mid)
        v.bankruptcy_price = staticcall engine.bankruptcy_price(a, mid)
        v.adl_score = staticcall engine.adl_score(a, mid)
        v.funding_owed = staticcall engine.funding_owed(a, mid)
    return v
