"""Backstop's off-chain bots.

- `bots.keeper`: the keeper (order executions, liquidations, ADL continuations,
  TP/SL), run as
  `python -m bots.keeper --account <alias | TEST::i> [--manifest deployments/<network>.json | --engine <address>]`
  (command line: `bots.cli`; metrics and health: `bots.metrics`; start-up
  checks: `bots.startup`).
- `bots.mirror`: the chain's engine state (positions, pending orders, TP/SL
  set times) mirrored into a model World.
- `bots.rpc`: batched JSON-RPC and the engine ABI encodings the keeper uses.
- `bots.devnet`: devnet tooling: the keeper as a child process, interval
  mining, fast position set-up through orders, and `blocks_to_liquidation`
  and `blocks_to_execution` (the benchmark).
"""
