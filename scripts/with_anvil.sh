#!/usr/bin/env bash
# with_anvil.sh CMD...: run CMD against an anvil started here on
# $BACKSTOP_PORT, stopped when CMD ends; CMD's exit status is this script's.
#
# ape-foundry would start the node itself, but always with --steps-tracing:
# every transaction then records every opcode, about a quarter of the
# devnet's throughput (the differential machine: 50 -> 62 steps/s). Nothing
# here reads step traces (revert reasons come from callTracer, gas from
# receipts), so `make test` starts anvil with ape-foundry's other flags and
# ape connects to the node already listening at its configured host.
set -euo pipefail
port="${BACKSTOP_PORT:-8547}"
if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "with_anvil.sh: port $port is already in use (another devnet?); set BACKSTOP_PORT to a free one" >&2
    exit 2
fi
anvil --port "$port" --mnemonic "test test test test test test test test test test test junk" \
    --accounts 30 --derivation-path "m/44'/60'/0'/0" --balance 10000 \
    --block-base-fee-per-gas 0 --gas-price 0 --hardfork prague --silent &
node=$!
trap 'kill "$node" 2>/dev/null || true; wait "$node" 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do
    (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$node" 2>/dev/null || { echo "with_anvil.sh: anvil exited" >&2; exit 2; }
    sleep 0.05
done
"$@"
