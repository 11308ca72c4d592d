"""Deploy Backstop on the connected ape network.

    ape run deploy --network ethereum:local:foundry
    ape run deploy --network ethereum:sepolia:<provider>   # reads config/networks.yaml
    ape run deploy --config my.yaml ...                     # or BACKSTOP_CONFIG=my.yaml
    ape run deploy --manifest out.json ...                  # default deployments/<network>.json

`ape run deploy` writes the deployment manifest (scripts/manifest.py):
every address including the lens, the chain id, the block and its hash,
every market's parameters; the keeper and scripts read it. It joins a node
that is already running: on a local network it refuses to deploy to a node
ape would start for the command alone (that node, and the deployment, would
stop with it), and it waits for each receipt on a node that mines on an
interval (`make devnet`: anvil --block-time N).

`deploy_protocol(deployer, config=None)` deploys and wires everything and
returns a `Protocol` with `engine`, `vault`, `insurance_fund`, `token`,
`feeds` (indexed by market id), the engine's facets `exits`,
`orders` and `admin`, and `timelock`: snekmate's TimelockController, the
owner of engine, vault and fund once deploy_protocol returns (its delay and
roles from the config's `governance`; scripts/governance.py, docs/trust.md).
The deployer's key alone can then change nothing.

The whole config is validated (scripts/config.py) before the first
transaction; a bad one raises `ConfigError` naming the file, network,
market and field, and nothing is sent. An existing token and feeds are
reached through the interfaces the contracts themselves compile against
(vyper's ethereum.ercs IERC20 + IERC20Detailed, and
contracts/interfaces/AggregatorV3.vyi), so no explorer plugin or API key is
needed.
"""

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import click
from ape import Contract, accounts, chain, networks, project
from ape.cli import account_option, network_option
from ape.contracts import ContractInstance
from eth_utils import to_checksum_address
from ethpm_types import ContractType

from model.positions import DEFAULT_ORDER_EXPIRY
from scripts import config as cfg
from scripts import manifest as mf
from scripts.governance import ZERO_ADDRESS, hand_over


@dataclass
class Protocol:
    engine: object
    vault: object
    insurance_fund: object
    token: object
    feeds: list
    exits: object
    orders: object = None
    admin: object = None
    timelock: object = None
    markets: list = field(default_factory=list)  # names, by market id
    params: list = field(default_factory=list)  # model MarketParams, by market id
    lens: object = None  # BackstopLens: many views in one eth_call
    fallback_feeds: dict = field(default_factory=dict)  # market id -> fallback feed (set_oracle)
    sequencer_feed: object = None  # the sequencer-uptime feed, when the config names one


def engine_at(address):
    """PerpEngine at `address`, with its facets' events in its ABI.

    PerpExits', PerpOrders' and PerpAdmin's code runs inside PerpEngine (delegatecall),
    so their events are emitted by the engine's address; this contract type
    decodes them."""
    ct = project.PerpEngine.contract_type.model_copy(deep=True)
    names = {getattr(x, "name", None) for x in ct.abi if x.type == "event"}
    for facet in (project.PerpExits, project.PerpOrders, project.PerpAdmin):
        for x in facet.contract_type.abi:
            if x.type == "event" and x.name not in names:
                ct.abi.append(x)
                names.add(x.name)
    return Contract(address, contract_type=ct)


@lru_cache(maxsize=None)
def interface(name):
    """The ContractType of an interface the contracts import: 'AggregatorV3'
    (contracts/interfaces/AggregatorV3.vyi) or 'ERC20' (vyper's built-in
    ethereum.ercs IERC20 and IERC20Detailed, which positions.vy uses).

    ape-vyper compiles no .vyi to a contract type (project.AggregatorV3 does
    not exist), so the ABI comes from the pinned vyper compiler itself."""
    import vyper
    from vyper.compiler import compile_code

    if name == "AggregatorV3":
        paths = [cfg.ROOT / "contracts" / "interfaces" / "AggregatorV3.vyi"]
    elif name == "ERC20":
        builtin = Path(vyper.__file__).parent / "builtins" / "interfaces"
        paths = [builtin / "IERC20.vyi", builtin / "IERC20Detailed.vyi"]
    else:
        raise ValueError(f"no interface {name!r}")
    abi, seen = [], set()
    for p in paths:
        for item in compile_code(p.read_text(), contract_path=p.name, output_formats=["abi"])["abi"]:
            key = (item["type"], item.get("name"))
            if key not in seen:
                seen.add(key)
                abi.append(item)
    return ContractType(contractName=name, abi=abi)


def at_interface(address, name, what):
    """`address` as the interface `name`, or ConfigError when no code is there."""
    if not networks.provider.get_code(address):
        raise cfg.ConfigError(f"{what} {address} has no code on {networks.provider.network.name}")
    # not Contract(address, contract_type=...): ape prefers a type it already
    # caches for the address (from a deploy, an explorer or its disk cache)
    return ContractInstance(to_checksum_address(address), interface(name))


def network_name():
    name = networks.provider.network.name
    return "local" if name in ("local", "development") else name


def checked_config(config=None, path=None):
    """The validated NetworkConfig for the connected network and, with
    mocks: false, the token and feeds it names (read, not sent to): every
    check runs before deploy_protocol's first transaction.

    `config`: None (the connected network's entry of `path`, default
    config/networks.yaml), a dict (one network's entry) or a NetworkConfig.
    Returns (net, token, decimals, feeds); token and feeds are None with mocks."""
    network = network_name()
    if config is None:
        net = cfg.load_config(network, path)
        source = cfg._label(Path(path) if path is not None else cfg.DEFAULT_PATH)
    elif isinstance(config, cfg.NetworkConfig):
        net, source = config, "config"
    else:
        net, source = cfg.validate(config, network, "deploy_protocol(config=...)"), "deploy_protocol(config=...)"
    if net.mocks:
        return net, None, net.collateral.decimals, None
    where = f"{source}: {network}: "
    try:
        token = at_interface(net.collateral.address, "ERC20", "collateral.address")
        decimals = int(token.decimals())
        feeds = []
        for i, m in enumerate(net.markets):
            feed = at_interface(m.feed, "AggregatorV3", f"markets[{i}] ({m.name}): feed")
            fd = int(feed.decimals())
            if fd > cfg.MAX_FEED_DECIMALS:
                raise cfg.ConfigError(f"markets[{i}] ({m.name}): feed {m.feed} has {fd} decimals, "
                                      f"above {cfg.MAX_FEED_DECIMALS} (params: feed decimals)")
            feeds.append(feed)
            if m.fallback_feed is not None:
                fb = at_interface(m.fallback_feed, "AggregatorV3", f"markets[{i}] ({m.name}): fallback_feed")
                if int(fb.decimals()) > cfg.MAX_FEED_DECIMALS:
                    raise cfg.ConfigError(f"markets[{i}] ({m.name}): fallback_feed {m.fallback_feed} has more than "
                                          f"{cfg.MAX_FEED_DECIMALS} decimals (params: feed decimals)")
        if net.sequencer is not None:
            at_interface(net.sequencer.feed, "AggregatorV3", "sequencer.feed")
    except cfg.ConfigError as e:
        raise cfg.ConfigError(where + str(e)) from None
    if decimals > cfg.MAX_TOKEN_DECIMALS:
        raise cfg.ConfigError(f"{where}collateral.address {net.collateral.address} has {decimals} decimals, "
                              f"above {cfg.MAX_TOKEN_DECIMALS} (engine: token decimals)")
    # the bounds that depend on the token's decimals (min_margin, execution fee)
    cfg.validate(net.model_dump(exclude_none=True), network, source, decimals=decimals)
    return net, token, decimals, feeds


def deploy_protocol(deployer, config=None, path=None):
    """Deploy token (mock on local networks), feeds, the facets (PerpExits,
    PerpOrders, PerpAdmin), PerpEngine,
    LiquidityVault and InsuranceFund; wire them; add the configured markets.

    The config is validated first (see `checked_config`); a bad one raises
    scripts.config.ConfigError before anything is sent."""
    net, token, decimals, feeds = checked_config(config, path)
    conf = net.as_dict()
    if conf["mocks"]:
        c = conf["collateral"]
        token = deployer.deploy(project.MockToken, c["name"], c["symbol"], c["decimals"])
        fd = conf.get("feed_decimals", 8)
        feeds = [deployer.deploy(project.MockAggregator, fd, m["initial_price"] * 10**fd) for m in conf["markets"]]

    exits = deployer.deploy(project.PerpExits, token)
    orders = deployer.deploy(project.PerpOrders, token)
    admin = deployer.deploy(project.PerpAdmin, token)
    engine = deployer.deploy(project.PerpEngine, token, exits, orders, admin)
    vault = deployer.deploy(project.LiquidityVault, token, engine)
    fund = deployer.deploy(project.InsuranceFund, token, engine)
    engine.initialize(vault, fund, sender=deployer)
    if conf["order_expiry"] != DEFAULT_ORDER_EXPIRY:
        engine.set_order_expiry(conf["order_expiry"], sender=deployer)
    if conf.get("max_profit_bps", 5000) != 5000:
        engine.set_max_profit(conf["max_profit_bps"] * 10**14, sender=deployer)
    params = []
    for m, feed in zip(conf["markets"], feeds):
        p = cfg.market_params(m, feed.address, decimals)
        mid = len(params)
        engine.add_market(p.as_tuple(), sender=deployer)
        params.append(p)
        if cfg.borrow_rate(m):
            engine.set_borrow_rate(mid, cfg.borrow_rate(m), sender=deployer)
    if conf.get("min_keeper_reward_units") or conf.get("min_notional_units"):
        engine.set_keeper_reward(conf["min_keeper_reward_units"], conf["min_notional_units"], sender=deployer)
    # price bounds, heartbeats, fallback feeds and the sequencer gate (scripts/oracles.py)
    from scripts.oracles import deploy_oracles
    fallbacks, sequencer = deploy_oracles(
        engine, conf,
        lambda args: deployer.deploy(project.MockAggregator, *args).address,
        lambda up_since: deployer.deploy(project.MockSequencerUptimeFeed, up_since).address,
        lambda verb, *args: getattr(engine, verb)(*args, sender=deployer))
    if conf["mocks"]:
        fallbacks = {i: project.MockAggregator.at(a) for i, a in fallbacks.items()}
        sequencer = project.MockSequencerUptimeFeed.at(sequencer) if sequencer else None
    else:
        fallbacks = {i: at_interface(a, "AggregatorV3", "fallback_feed") for i, a in fallbacks.items()}
        sequencer = at_interface(sequencer, "AggregatorV3", "sequencer.feed") if sequencer else None
    # The owner of everything: snekmate's TimelockController, deployed with
    # delay 0 and the deployer as its only proposer and executor, then handed
    # the engine, vault and fund and given the configured roles and delay in
    # one batch operation of its own (scripts/governance.hand_over).
    gov = cfg.governance_of(conf)
    if gov.get("pauser"):
        engine.set_pauser(deployer if gov["pauser"] == "deployer" else gov["pauser"], sender=deployer)
    timelock = deployer.deploy(project.TimelockController, 0, [deployer], [deployer], ZERO_ADDRESS)
    hand_over(timelock, engine, vault, fund, deployer, gov)
    unit = 10**decimals
    if conf["mocks"]:
        if conf.get("insurance_seed"):
            token.mint(fund, conf["insurance_seed"] * unit, sender=deployer)
        if conf.get("vault_seed"):
            token.mint(deployer, conf["vault_seed"] * unit, sender=deployer)
            token.approve(vault, conf["vault_seed"] * unit, sender=deployer)
            # through the vault's epochs (ERC-7540): request, later mock rounds, settle, claim
            from scripts.lp import deposit_through_epoch
            deposit_through_epoch(vault, feeds, deployer, conf["vault_seed"] * unit)
    return Protocol(
        engine=engine_at(engine.address),
        vault=vault,
        insurance_fund=fund,
        token=token,
        feeds=feeds,
        exits=exits,
        orders=orders,
        admin=admin,
        timelock=timelock,
        markets=[m["name"] for m in conf["markets"]],
        params=params,
        lens=deployer.deploy(project.BackstopLens),
        fallback_feeds=fallbacks,
        sequencer_feed=sequencer,
    )


@contextmanager
def awaiting_receipts():
    """Make ape wait for every receipt on a node that mines on an interval.

    ape 0.8 asks the node whether it automines (anvil_getAutomine); on a
    node mining every N seconds (`anvil --block-time N`, `make devnet`) the
    answer is no, and ape returns a placeholder receipt without waiting: a
    deployment then fails with "did not create a contract". While deploying,
    ape is told the node automines, so it waits for each receipt (web3's
    wait_for_transaction_receipt, up to the network's
    transaction_acceptance_timeout). Nothing changes on an automining node."""
    provider = networks.provider
    cls = type(provider)
    prop = cls.__dict__.get("auto_mine")
    if not isinstance(prop, property) or provider.auto_mine:
        yield
        return
    setattr(cls, "auto_mine", property(lambda self: True, prop.fset))
    try:
        yield
    finally:
        setattr(cls, "auto_mine", prop)


def manifest_of(p, deployer, from_block, source):
    """The deployment manifest (a dict, scripts/manifest.py's schema) of
    Protocol `p`, deployed by `deployer` from block `from_block` on."""
    from eth_utils import keccak

    head = chain.provider.get_block("latest")
    code = networks.provider.get_code(p.engine.address)
    provider_network = networks.provider.network
    decimals = int(p.token.decimals())
    return {
        "format": mf.FORMAT,
        "network": network_name(),
        "ecosystem": provider_network.ecosystem.name,
        "chain_id": chain.chain_id,
        "block": head.number,
        "block_hash": head.hash.to_0x_hex() if hasattr(head.hash, "to_0x_hex") else "0x" + bytes(head.hash).hex(),
        "from_block": from_block,
        "timestamp": head.timestamp,
        "deployer": str(deployer.address),
        "config": source,
        "contracts": {
            "engine": p.engine.address, "exits": p.exits.address, "orders": p.orders.address, "admin": p.admin.address,
            "timelock": p.timelock.address,
            "vault": p.vault.address, "insurance_fund": p.insurance_fund.address, "token": p.token.address,
            "lens": p.lens.address,
        },
        "engine_code_hash": "0x" + keccak(bytes(code)).hex(),
        "token": {"symbol": str(p.token.symbol()), "decimals": decimals},
        "order_expiry": int(p.engine.order_expiry()),
        "engine_params": engine_params(p.engine),
        "markets": [
            {"id": i, "name": name, "feed": feed.address,
             "params": {k: (v if isinstance(v, int) else str(v)) for k, v in asdict(params).items()}}
            for i, (name, feed, params) in enumerate(zip(p.markets, p.feeds, p.params))
        ],
    }


# Engine-wide parameters recorded in the manifest, where the engine has the view.
ENGINE_PARAMS = ("max_profit", "min_keeper_reward", "min_notional")


def engine_params(engine):
    """{view name: value} of the engine-wide parameters this engine exposes."""
    out = {}
    for name in ENGINE_PARAMS:
        view = getattr(engine, name, None)
        if view is not None:
            out[name] = int(view())
    return out


def _choice(provider):
    """ecosystem:network:provider by name (ape's network_choice reads the
    node URI, which may be what is missing)."""
    return f"{provider.network.ecosystem.name}:{provider.network.name}:{provider.name}"


def _node_uri(provider):
    """The provider's node URI, or one line saying how to give it: ape-config
    reads each network's URI from an environment variable."""
    try:
        uri = provider.uri
    except Exception as e:  # noqa: BLE001 - ape raises ConfigError or ProviderError for a missing URI
        uri, why = None, str(e).splitlines()[0]
    else:
        why = f"'{uri}' is not set" if uri and "$" in uri else None
    if why or not uri:
        var = {"sepolia": "SEPOLIA_RPC_URL"}.get(provider.network.name)
        hint = f"export {var}=<your node's https URL>" if var else (
            f"add node: {provider.network.ecosystem.name}: {provider.network.name}: uri: ... to ape-config.yaml")
        raise click.ClickException(f"no node URI for {_choice(provider)} ({why}): {hint}")
    return uri


def _refuse_without_node(provider):
    """On a local network, a node ape started for this command would stop
    with it, and the deployment with it: refuse before connecting when none
    is listening."""
    if provider.network.name not in ("local", "development"):
        return
    from bots.rpc import Rpc, RpcError

    uri = _node_uri(provider)
    if not uri.startswith("http"):
        return
    try:
        Rpc(uri, timeout=3).request("eth_chainId", [])
    except RpcError:
        raise click.ClickException(f"no node at {uri}: start the devnet first (`make devnet`), or set BACKSTOP_PORT "
                                   "to a running node's port (a node ape started would stop, and the deployment "
                                   "with it, when this command ends)") from None


@click.command()
@network_option(default="ethereum:local:foundry", help="ape network choice (ecosystem:network:provider)")
@account_option(prompt=False)
@click.option("--config", "config_path", envvar="BACKSTOP_CONFIG", type=click.Path(dir_okay=False),
              default=None, help="deployment config (default config/networks.yaml; env BACKSTOP_CONFIG)")
@click.option("--manifest", "manifest_path", envvar="BACKSTOP_MANIFEST", type=click.Path(dir_okay=False),
              default=None, help="where to write the deployment manifest (default deployments/<network>.json; "
                                 "env BACKSTOP_MANIFEST)")
def cli(provider, account, config_path, manifest_path):
    """Deploy Backstop to the connected network, print the addresses and
    write the deployment manifest.

    --account takes an ape account alias (or TEST::<n>). It is required off
    local networks; on local ones the first test account deploys. The config
    is validated, token and feeds included, before anything is sent.
    On a local network it joins the node already listening (`make devnet`);
    elsewhere the node URI comes from ape-config.yaml (SEPOLIA_RPC_URL for
    sepolia)."""
    _refuse_without_node(provider)
    _node_uri(provider)
    try:
        with provider.network.use_provider(provider):
            _deploy(account, config_path, manifest_path)
    except click.ClickException:
        raise
    except Exception as e:  # noqa: BLE001 - ape's connection errors: one line, not a traceback
        if type(e).__module__.split(".")[0] not in ("ape", "ape_ethereum", "ape_node", "ape_foundry", "requests"):
            raise
        raise click.ClickException(f"{_choice(provider)}: {type(e).__name__}: {str(e).splitlines()[0]}") from None


def _deploy(account, config_path, manifest_path):
    try:
        checked = checked_config(None, config_path)
    except cfg.ConfigError as e:
        raise click.ClickException(str(e)) from None
    if account is None:
        if network_name() != "local":
            raise click.UsageError(f"--account is required on {networks.provider.network.name}")
        account = accounts.test_accounts[0]
    out = Path(manifest_path) if manifest_path else mf.path_for(network_name())
    if out.parent.exists() and not out.parent.is_dir():
        raise click.ClickException(f"--manifest {out}: {out.parent} is not a folder")
    source = cfg._label(Path(config_path) if config_path else cfg.DEFAULT_PATH)
    from_block = chain.blocks.head.number + 1
    with awaiting_receipts():
        p = deploy_protocol(account, config=checked[0])
    written = mf.write(manifest_of(p, account, from_block, source), out)
    click.echo(f"network         {networks.provider.network.name} (chain id {chain.chain_id})")
    for name in ("engine", "exits", "orders", "admin", "timelock", "vault", "insurance_fund", "token", "lens"):
        click.echo(f"{name:<15} {getattr(p, name).address}")
    click.echo(f"timelock delay  {p.timelock.get_minimum_delay()} s (owner of engine, vault and fund)")
    click.echo(f"order expiry    {p.engine.order_expiry()} s")
    for i, (name, feed) in enumerate(zip(p.markets, p.feeds)):
        click.echo(f"market {i:<8} {name:<10} feed {feed.address}")
    click.echo(f"manifest        {mf._label(written)}")
