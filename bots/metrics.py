"""The keeper's operator surface: Prometheus metrics, a health endpoint and
log formats.

One HTTP server (a daemon thread, standard library) answers
- `GET /metrics`: every metric below in Prometheus' text format
  (prometheus-client);
- `GET /health`: 200 and a JSON body while the keeper is healthy, 503 and
  the reason otherwise (no head read for `stale_after` seconds, the engine
  gone from the chain, the balance below the threshold, the breaker
  tripped).

Each keeper has its own registry (tests run several in one process).
"""

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

NS = "backstop_keeper"


class Metrics:
    """Every number the keeper exports. Counters only go up while the
    process lives; Prometheus' rate() and increase() handle restarts."""

    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.actions = Counter(f"{NS}_actions", "Keeper actions by kind (order, liquidate, deleverage, tp_sl, "
                               "settle) and outcome (sent, mined, failed, race, replaced, held_gas_cap, "
                               "held_unprofitable, dropped, wait)",
                               ["kind", "outcome"], registry=r)
        self.rewards = Counter(f"{NS}_rewards_earned_tokens", "Rewards earned by the keeper, in collateral tokens, "
                               "by kind: credited to its free collateral in the engine, or (settle) paid to its "
                               "wallet by the vault", ["kind"], registry=r)
        self.gas_used = Counter(f"{NS}_gas_used", "Gas used by the keeper's mined transactions", registry=r)
        self.gas_spent = Counter(f"{NS}_gas_spent_wei", "Fees paid for the keeper's mined transactions, in wei "
                                 "(gas used x effective gas price)", registry=r)
        self.unexpected = Counter(f"{NS}_unexpected_total", "Unexpected reverts and failed sends (the circuit "
                                  "breaker counts them in a row)", registry=r)
        self.rpc_errors = Counter(f"{NS}_rpc_errors", "JSON-RPC errors (each one backed off and retried)",
                                  registry=r)
        self.rpc_failovers = Counter(f"{NS}_rpc_failovers", "Switches to another RPC endpoint", registry=r)
        self.resets = Counter(f"{NS}_chain_resets", "Chain resets and reorganisations survived", registry=r)
        self.head = Gauge(f"{NS}_head_block", "The node's latest block number", registry=r)
        self.processed = Gauge(f"{NS}_processed_block", "The last block the keeper processed", registry=r)
        self.lag = Gauge(f"{NS}_lag_blocks", "Blocks between the node's head and the last processed block",
                         registry=r)
        self.in_flight = Gauge(f"{NS}_in_flight", "Transactions sent and not yet mined", registry=r)
        self.balance = Gauge(f"{NS}_balance_wei", "The keeper account's native balance, in wei", registry=r)
        self.base_fee = Gauge(f"{NS}_base_fee_wei", "The base fee of the last processed block, in wei",
                              registry=r)
        self.positions = Gauge(f"{NS}_open_positions", "Open positions the keeper watches", registry=r)
        self.orders = Gauge(f"{NS}_pending_orders", "Pending orders the keeper watches", registry=r)
        self.last_loop = Gauge(f"{NS}_last_loop_timestamp_seconds", "Unix time of the last successful head poll",
                               registry=r)
        self.lp_wait = Gauge(f"{NS}_lp_epoch_wait_seconds", "Seconds since the last request of the LP epoch "
                             "waiting to be priced (0: no requests waiting)", registry=r)
        self.up = Gauge(f"{NS}_healthy", "1 while /health answers 200", registry=r)
        # Zero-valued series exist from the start, so rate() has a baseline.
        for kind in ("order", "liquidate", "deleverage", "tp_sl", "settle"):
            for outcome in ("sent", "mined", "failed"):
                self.actions.labels(kind, outcome)
            self.rewards.labels(kind)

    def text(self):
        return generate_latest(self.registry)


class Health:
    """What /health reports: set by the keeper's loop, read by the server."""

    def __init__(self, stale_after=60.0):
        self.stale_after = stale_after
        self.last_ok = time.time()
        self.problem = None  # a sticky reason (engine gone, breaker, low balance)
        self.info = {}
        self._lock = threading.Lock()

    def ok(self, **info):
        with self._lock:
            self.last_ok = time.time()
            self.info.update(info)

    def set_problem(self, reason):
        with self._lock:
            self.problem = reason

    def report(self):
        with self._lock:
            age = time.time() - self.last_ok
            reason = self.problem
            if reason is None and age > self.stale_after:
                reason = f"no head read for {age:.0f}s (more than {self.stale_after:.0f}s)"
            body = {"status": "ok" if reason is None else "unhealthy", "seconds_since_head_read": round(age, 1),
                    **self.info}
            if reason:
                body["reason"] = reason
            return reason is None, body


def serve(metrics, health, host, port):
    """Start the HTTP server on (host, port) in a daemon thread; returns the
    server (its server_address names the port when 0 was asked)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            path = self.path.split("?")[0]
            if path == "/metrics":
                ok, _ = health.report()
                metrics.up.set(1 if ok else 0)
                body, ctype, code = metrics.text(), CONTENT_TYPE_LATEST, 200
            elif path in ("/health", "/healthz"):
                ok, info = health.report()
                body, ctype, code = json.dumps(info).encode(), "application/json", 200 if ok else 503
            else:
                body, ctype, code = b"not found: /metrics and /health\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # scrapes are not worth a log line
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="keeper-http", daemon=True).start()
    return server


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message (and the
    exception, when there is one)."""

    def format(self, record):
        out = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"
               if self.converter is time.gmtime else self.formatTime(record),
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level="info", fmt="text", stream=None):
    """Root logging for the keeper process: `fmt` 'text' (one line:
    time, 'keeper', message) or 'json'."""
    import sys

    handler = logging.StreamHandler(stream or sys.stdout)
    if fmt == "json":
        f = JsonFormatter()
        f.converter = time.gmtime
        handler.setFormatter(f)
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s keeper %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("ape").setLevel(max(logging.WARNING, root.level))
    for noisy in ("urllib3", "web3", "requests"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
