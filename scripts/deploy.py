"""Deploy Backstop on the connected ape network.

    ape run deploy --network ethereum:local:foundry
    ape run deploy --network ethereum:sepolia:<provider>   # reads config/networks.yaml

`deploy_protocol(deployer, config=None)` deploys and wires everything and
returns a `Protocol` with `engine`, `vault`, `insurance_fund`, `token`,
`feeds` (indexed by market id), and the engine's facets `exits` and
`orders`.
"""

from dataclasses import dataclass, field

import click
from ape import Contract, accounts, chain, networks, project
from ape.cli import ConnectedProviderCommand, account_option

from scripts import config as cfg


@dataclass
class Protocol:
    engine: object
    vault: object
    insurance_fund: object
    token: object
    feeds: list
    exits: object
    orders: object = None
    markets: list = field(default_factory=list)  # names, by market id
    params: list = field(default_factory=list)  # model MarketParams, by market id
    lens: object = None  # BackstopLens: many views in one eth_call


def engine_at(address):
    """PerpEngine at `address`, with its facets' events in its ABI.

    PerpExits' and PerpOrders' code runs inside PerpEngine (delegatecall),
    so their events are emitted by the engine's address; this contract type
    decodes them."""
    ct = project.PerpEngine.contract_type.model_copy(deep=True)
    names = {getattr(x, "name", None) for x in ct.abi if x.type == "event"}
    for facet in (project.PerpExits, project.PerpOrders):
        for x in facet.contract_type.abi:
            if x.type == "event" and x.name not in names:
                ct.abi.append(x)
                names.add(x.name)
    return Contract(address, contract_type=ct)


def network_name():
    name = networks.provider.network.name
    return "local" if name in ("local", "development") else name


def deploy_protocol(deployer, config=None):
    """Deploy token (mock on local networks), feeds, PerpExits, PerpEngine,
    LiquidityVault and InsuranceFund; wire them; add the configured markets."""
    conf = config if config is not None else cfg.load(network_name())
    if conf["mocks"]:
        c = conf["collateral"]
        token = deployer.deploy(project.MockToken, c["name"], c["symbol"], c["decimals"])
        decimals = c["decimals"]
        fd = conf.get("feed_decimals", 8)
        feeds = [deployer.deploy(project.MockAggregator, fd, m["initial_price"] * 10**fd) for m in conf["markets"]]
    else:
        token = Contract(conf["collateral"]["address"])
        decimals = token.decimals()
        feeds = [Contract(m["feed"]) for m in conf["markets"]]

    exits = deployer.deploy(project.PerpExits, token)
    orders = deployer.deploy(project.PerpOrders, token)
    engine = deployer.deploy(project.PerpEngine, token, exits, orders)
    vault = deployer.deploy(project.LiquidityVault, token, engine)
    fund = deployer.deploy(project.InsuranceFund, token, engine)
    engine.initialize(vault, fund, sender=deployer)
    params = []
    for m, feed in zip(conf["markets"], feeds):
        p = cfg.market_params(m, feed.address, decimals)
        engine.add_market(p.as_tuple(), sender=deployer)
        params.append(p)
    unit = 10**decimals
    if conf["mocks"]:
        if conf.get("insurance_seed"):
            token.mint(fund, conf["insurance_seed"] * unit, sender=deployer)
        if conf.get("vault_seed"):
            token.mint(deployer, conf["vault_seed"] * unit, sender=deployer)
            token.approve(vault, conf["vault_seed"] * unit, sender=deployer)
            vault.deposit(conf["vault_seed"] * unit, deployer, sender=deployer)
    return Protocol(
        engine=engine_at(engine.address),
        vault=vault,
        insurance_fund=fund,
        token=token,
        feeds=feeds,
        exits=exits,
        orders=orders,
        markets=[m["name"] for m in conf["markets"]],
        params=params,
        lens=deployer.deploy(project.BackstopLens),
    )


@click.command(cls=ConnectedProviderCommand)
@account_option(prompt=False)
def cli(account):
    """Deploy Backstop to the connected network and print the addresses.

    --account takes an ape account alias (or TEST::<n>). It is required off
    local networks; on local ones the first test account deploys."""
    if account is None:
        if network_name() != "local":
            raise click.UsageError(f"--account is required on {networks.provider.network.name}")
        account = accounts.test_accounts[0]
    p = deploy_protocol(account)
    click.echo(f"network         {networks.provider.network.name} (chain id {chain.chain_id})")
    for name in ("engine", "exits", "orders", "vault", "insurance_fund", "token"):
        click.echo(f"{name:<15} {getattr(p, name).address}")
    for i, (name, feed) in enumerate(zip(p.markets, p.feeds)):
        click.echo(f"market {i:<8} {name:<10} feed {feed.address}")
