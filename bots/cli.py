"""The keeper's command line: `python -m bots.keeper` (`make keeper`).

click, with ape's own `--network` and `--account` options (network choices
as `ape` spells them, accounts as ape aliases or `TEST::<i>`). Every option
also reads an environment variable (`KEEPER_<OPTION>`, e.g.
KEEPER_ACCOUNT, KEEPER_FALLBACK_RPC) and a YAML file given with --config
(keys are the option names, `max-fee-gwei: 50`); the command line wins over
the environment, which wins over the file.

Every bad input ends in one line on stderr (`keeper: error: ...`) and exit
code 2 before anything is sent: a misspelled network, an unknown account,
an engine address that is malformed, empty or not a PerpEngine of the
version this checkout compiles, a manifest of another chain or of a chain
that was reset, a state file in a missing folder, an account below the
minimum balance, a metrics port in use. Exit codes: docs/keeper.md.
"""

import json
import logging
import os
import re
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click
import yaml
from ape.cli import account_option, network_option

from bots import rpc as R
from bots import startup as S
from bots.metrics import Health, Metrics, serve, setup_logging
from scripts import manifest as mf

log = logging.getLogger("keeper")

DEFAULT_NETWORK = "ethereum:local:foundry"


def _choice(provider):
    """ecosystem:network:provider by name (ape's network_choice reads the
    node URI, which may be what is missing)."""
    return f"{provider.network.ecosystem.name}:{provider.network.name}:{provider.name}"


def _fail(message):
    raise click.ClickException(message)


def _decimal(text, what, minimum=Decimal(0)):
    try:
        d = Decimal(str(text))
    except InvalidOperation:
        _fail(f"{what} {text!r} is not a number")
    if not d.is_finite() or d < minimum:
        _fail(f"{what} {text!r} must be a number at least {minimum}")
    return d


def _config_file(ctx, param, value):
    """--config FILE: option defaults from YAML (below the command line and
    the environment)."""
    if not value:
        return value
    try:
        data = yaml.safe_load(Path(value).read_text()) or {}
    except OSError as e:
        raise click.BadParameter(f"{value}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise click.BadParameter(f"{value}: not YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{value}: expected a mapping of option names to values")
    known = {p.name for p in ctx.command.params}
    out = {}
    for k, v in data.items():
        name = str(k).replace("-", "_")
        if name not in known or name == "config":
            raise click.BadParameter(f"{value}: unknown option {k!r}")
        out[name] = v
    ctx.default_map = {**(ctx.default_map or {}), **out}
    return value


def _manifest_for(provider, explicit, engine):
    """(Manifest or None, its label). The manifest is read when --manifest
    is given or --engine is not: an explicit --engine alone ignores the
    default manifest (devnet addresses repeat from one fresh chain to the
    next, so an address says nothing about which deployment it is)."""
    path = Path(explicit) if explicit else mf.path_for(f"{provider.network.ecosystem.name}:{provider.network.name}")
    label = mf._label(path)
    if engine is not None and not explicit:
        return None, label
    try:
        m = mf.load(path)
    except mf.ManifestError as e:
        _fail(f"{e} (or pass --engine)" if not explicit else str(e))
    if engine is not None and R.addr(engine) != m.contracts.engine:
        _fail(f"--engine {engine} is not {label}'s engine {m.contracts.engine}")
    return m, label


def _signing_account(account):
    """Something with a key: ape's test accounts have one; a keyfile account
    is decrypted with eth-account's public API (KEEPER_PASSPHRASE, or a
    prompt on a terminal)."""
    if getattr(account, "private_key", None):
        return account
    keyfile = getattr(account, "keyfile", None)
    if keyfile is None:
        _fail(f"--account {getattr(account, 'alias', account.address)}: this kind of account "
              f"({type(account).__name__}) cannot sign for the keeper; use a keyfile account (ape accounts import)")
    from eth_account import Account

    alias = getattr(account, "alias", account.address)
    passphrase = os.environ.get("KEEPER_PASSPHRASE")
    if passphrase is None:
        if not sys.stdin.isatty():
            _fail(f"--account {alias}: set KEEPER_PASSPHRASE to its passphrase (no terminal to ask on)")
        passphrase = click.prompt(f"passphrase of {alias}", hide_input=True)
    try:
        key = Account.decrypt(keyfile, passphrase)
    except ValueError:
        _fail(f"--account {alias}: wrong passphrase (KEEPER_PASSPHRASE)")
    return Account.from_key(key)


def _ape_account_spelling(argv):
    """`TEST:3` (this keeper's former spelling, still used by callers) is
    ape's `TEST::3`."""
    out = []
    for a in argv:
        m = re.fullmatch(r"(--account=)?TEST:(\d+)", a, flags=re.IGNORECASE)
        out.append(f"{m.group(1) or ''}TEST::{m.group(2)}" if m else a)
    return out


@click.command(name="python -m bots.keeper", context_settings={"auto_envvar_prefix": "KEEPER",
                                                               "help_option_names": ["-h", "--help"]})
@click.option("--config", type=click.Path(dir_okay=False), callback=_config_file, is_eager=True, expose_value=False,
              help="YAML file of option defaults (keys: option names)")
@network_option(default=DEFAULT_NETWORK, help="ape network choice (ecosystem:network:provider)")
@account_option(prompt=False)
@click.option("--manifest", default=None, help="deployment manifest (default deployments/<network>.json)")
@click.option("--engine", default=None, help="PerpEngine address (default: the manifest's)")
@click.option("--rpc", default=None, help="primary JSON-RPC URL (default: the ape network's URI)")
@click.option("--fallback-rpc", multiple=True, help="another JSON-RPC URL, used when the current one fails (repeatable)")
@click.option("--state-file", default="keeper-state.json", show_default=True,
              help="in-flight transactions and last block (JSON); its folder must exist")
@click.option("--dry-run", is_flag=True, help="simulate and log, send nothing")
@click.option("--max-blocks", type=click.IntRange(min=0), default=None, help="stop after this many new blocks")
@click.option("--poll", type=click.FloatRange(min=0.01), default=0.2, show_default=True, help="seconds between head polls")
@click.option("--breaker", type=click.IntRange(min=1), default=5, show_default=True,
              help="stop (exit 3) after this many unexpected reverts or failed sends in a row")
@click.option("--block-time", type=click.IntRange(min=0), default=1, show_default=True,
              help="expected seconds between blocks (the simulation's timestamp)")
@click.option("--min-balance", default="0.01", show_default=True,
              help="ETH: refuse to start below it, report unhealthy below it")
@click.option("--max-fee-gwei", default=None, help="gas-price cap; above it only bankrupt liquidations and ADL are sent")
@click.option("--native-price", default=None,
              help="collateral tokens per native coin, for the profitability check (default: ETH-PERP's feed)")
@click.option("--min-profit-ratio", default="1", show_default=True,
              help="send an earning action only if reward >= gas cost x this (0 turns the check off)")
@click.option("--stuck-blocks", type=click.IntRange(min=1), default=3, show_default=True,
              help="replace a transaction still pending after this many blocks")
@click.option("--fee-bump-pct", default="12.5", show_default=True, help="fee increase of a replacement, percent (>= 10)")
@click.option("--metrics-port", type=click.IntRange(min=0, max=65535), default=None,
              help="serve /metrics and /health on this port (0: any free port; default: off)")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="address to serve metrics on")
@click.option("--heartbeat", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="seconds between heartbeat lines (0: none)")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              default="info", show_default=True)
@click.option("--log-format", type=click.Choice(["text", "json"], case_sensitive=False), default="text",
              show_default=True)
def command(provider, account, manifest, engine, rpc, fallback_rpc, state_file, dry_run, max_blocks, poll, breaker,
            block_time, min_balance, max_fee_gwei, native_price, min_profit_ratio, stuck_blocks, fee_bump_pct,
            metrics_port, metrics_host, heartbeat, log_level, log_format):
    """Backstop keeper: execute orders, liquidate, deleverage, execute TP/SL."""
    setup_logging(log_level, log_format)
    try:
        return _run(**locals())
    except S.StartupError as e:
        _fail(str(e))


def _run(provider, account, manifest, engine, rpc, fallback_rpc, state_file, dry_run, max_blocks, poll, breaker,
         block_time, min_balance, max_fee_gwei, native_price, min_profit_ratio, stuck_blocks, fee_bump_pct,
         metrics_port, metrics_host, heartbeat, log_level, log_format):
    from bots.keeper import EXIT_BREAKER, CircuitBreaker, Keeper, Signer

    # ---- inputs that need no node
    if account is None:
        _fail("--account is required (an ape account alias, or TEST::<i> for a test account)")
    if engine is not None:
        engine = S.address(engine, "--engine")
    state = S.state_file(state_file)
    min_balance_wei = int(_decimal(min_balance, "--min-balance") * 10**18)
    max_fee = int(_decimal(max_fee_gwei, "--max-fee-gwei") * 10**9) if max_fee_gwei is not None else None
    bump = _decimal(fee_bump_pct, "--fee-bump-pct", Decimal(10))
    ratio = _decimal(min_profit_ratio, "--min-profit-ratio")
    native = _decimal(native_price, "--native-price") if native_price is not None else None
    m, label = _manifest_for(provider, manifest, engine)
    engine = engine or m.contracts.engine
    signing = _signing_account(account)

    # ---- the node (the keeper joins one; it never starts one)
    if rpc is None:
        try:
            rpc = provider.uri
        except Exception as e:  # noqa: BLE001 - ape raises several kinds for a missing URI
            var = {"sepolia": "SEPOLIA_RPC_URL"}.get(provider.network.name, "that ape-config.yaml reads for it")
            _fail(f"--network {_choice(provider)}: no node URI ({str(e).splitlines()[0]}); set the environment "
                  f"variable {var}, or pass --rpc")
    metrics = Metrics()
    client = R.Rpc([rpc, *fallback_rpc], timeout=10.0, on_failover=lambda old, new, err: (
        metrics.rpc_failovers.inc(), log.warning("rpc %s failed (%s): switched to %s", old, err, new)))
    chain_id = S.check_node(client, " or ".join([rpc, *fallback_rpc]))
    if m is not None:
        S.check_manifest(client, m, chain_id, label)
    S.check_engine(client, engine, chain_id)
    signer = Signer(signing, chain_id)
    balance = int(client.request("eth_getBalance", [signer.address, "latest"]), 16)
    if not dry_run:
        S.check_balance(client, signer.address, min_balance_wei, chain_id)
    decimals = m.token.decimals if m else None
    native_units = int(native * 10**decimals) if native is not None and decimals is not None else None
    if native is not None and decimals is None:
        dec = int(client.request("eth_call", [{"to": engine, "data": R.calldata("SCALE()", [], [])}, "latest"]), 16)
        native_units = int(native * 10 ** (36 - len(str(dec)) + 1))
    native_market = None
    if m is not None:
        native_market = next((mk.id for mk in m.markets if mk.name.upper().startswith("ETH")), None)

    health = Health(stale_after=max(30.0, 20 * poll))
    server = None
    if metrics_port is not None:
        try:
            server = serve(metrics, health, metrics_host, metrics_port)
        except OSError as e:
            _fail(f"--metrics-port {metrics_port}: cannot listen on {metrics_host}:{metrics_port} ({e.strerror or e})")

    keeper = Keeper(client, engine, signer, state_file=state, dry_run=dry_run, poll=poll, max_blocks=max_blocks,
                    breaker=breaker, block_time=block_time, metrics=metrics, health=health, max_fee=max_fee,
                    native_price=native_units, native_market=native_market,
                    min_profit_bps=int(ratio * 10_000), fee_bump_bps=int(bump * 100), stuck_blocks=stuck_blocks,
                    min_balance=min_balance_wei, heartbeat=heartbeat)
    log.info("keeper %s on chain %d via %s%s: engine %s (version %s)%s, balance %.6g ETH%s%s", signer.address,
             chain_id, rpc, f" (+{len(fallback_rpc)} fallback)" if fallback_rpc else "", engine, S.engine_version(),
             f" from {label}" if m else "", balance / 1e18,
             f", metrics http://{metrics_host}:{server.server_address[1]}/metrics" if server else "",
             "" if native_units is not None or native_market is not None else ", profitability check off (no price "
             "for the native coin: --native-price)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        keeper.run()
    except CircuitBreaker as exc:
        log.error("circuit breaker: %s; stopping", exc)
        return EXIT_BREAKER
    except KeyboardInterrupt:
        log.info("interrupted")
    finally:
        log.info("stats %s", json.dumps(keeper.stats, sort_keys=True))
        if server:
            server.shutdown()
    return 0


def main(argv=None):
    """Run the keeper; returns the exit code (0 stopped, 2 bad input or
    failed start-up check, 3 circuit breaker, 1 a bug)."""
    argv = _ape_account_spelling(list(sys.argv[1:] if argv is None else argv))
    if os.environ.get("KEEPER_ACCOUNT"):
        os.environ["KEEPER_ACCOUNT"] = _ape_account_spelling([os.environ["KEEPER_ACCOUNT"]])[0]
    try:
        code = command.main(args=argv, prog_name="python -m bots.keeper", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        return 130
    except click.ClickException as e:
        msg = " ".join(e.format_message().split())
        print(f"keeper: error: {msg}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - a bug: the traceback goes to the log, exit 1
        log.exception("keeper: unexpected error")
        return 1
    return code or 0
