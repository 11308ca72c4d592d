# Backstop: two commands matter. `make demo` plays the crash on a devnet;
# `make test` passes the tests. Both install what they need into the repo
# (.venv, node_modules, .vvm) on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export VVM_BINARY_PATH := $(CURDIR)/.vvm
export PATH := $(CURDIR)/node_modules/.bin:$(BIN):$(PATH)
export PYTHONPATH := $(CURDIR)
NETWORK ?= ethereum:local:foundry
export BACKSTOP_PORT ?= 8547

.PHONY: install compile test test-devnet demo devnet deploy keeper fuzz-deep bench clean mutants risk risk-check risk-bench

install: $(VENV)/.stamp node_modules/.stamp .vvm/vyper-0.4.3

$(VENV)/.stamp: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# vvm cannot download compilers here; it finds the pinned pip vyper instead.
.vvm/vyper-0.4.3: $(VENV)/.stamp
	mkdir -p .vvm
	ln -sf $(BIN)/vyper .vvm/vyper-0.4.3

# ape does not see edits to modules it is told not to compile on their own
# (positions.vy, adl.vy, ...): rebuild whenever any contract source changed.
CONTRACT_SOURCES := $(shell find contracts -name '*.vy' -o -name '*.vyi')
.build/.stamp: $(CONTRACT_SOURCES) ape-config.yaml | install
	$(BIN)/ape compile --force > /dev/null
	touch $@

compile: .build/.stamp

# anvil without ape-foundry's --steps-tracing (scripts/with_anvil.sh says why)
test: install compile
	BACKSTOP_DEPLOYMENTS=$(CURDIR)/.cache/test-deployments scripts/with_anvil.sh $(BIN)/ape test tests/ --network $(NETWORK) -q \
		--ignore=tests/devnet/test_devnet_keeper.py --ignore=tests/keeper/test_keeper_e2e.py

# The keeper end to end as a process (price paths, 200 liquidations, orders)
# and the three-terminal devnet path (make devnet, deploy, keeper): about
# four minutes, outside `make test` for CI's 20-minute budget.
test-devnet: install compile
	BACKSTOP_DEPLOYMENTS=$(CURDIR)/.cache/test-deployments scripts/with_anvil.sh $(BIN)/ape test tests/devnet/test_devnet_keeper.py tests/keeper/test_keeper_e2e.py --network $(NETWORK) -q

# make demo [SCENARIO=scenarios/my.yaml]: a bad scenario is refused in one
# line before a node starts (scripts/scenario.py)
demo: install compile
	$(BIN)/ape run demo --network $(NETWORK) $(if $(SCENARIO),--scenario "$(SCENARIO)")

# ---- the devnet path (README, "A devnet in three terminals"):
#   make devnet    # terminal 1: anvil on $(BACKSTOP_PORT), 30 accounts, a block every BLOCK_TIME s
#   make deploy    # terminal 2: deploys, writes deployments/local.json
#   make keeper    # terminal 3: the keeper, from that manifest
BLOCK_TIME ?= 1
DEVNET_MNEMONIC := test test test test test test test test test test test junk
# on a local network, deploy and keeper join a running node (never start one)
need_node = case "$(NETWORK)" in *:local:*|*:local) \
	(echo > /dev/tcp/127.0.0.1/$(BACKSTOP_PORT)) 2>/dev/null || { \
	echo "make $(1): no node at 127.0.0.1:$(BACKSTOP_PORT); start one with 'make devnet' (or set BACKSTOP_PORT)" >&2; exit 2; };; esac

devnet: install
	@if (echo > /dev/tcp/127.0.0.1/$(BACKSTOP_PORT)) 2>/dev/null; then \
		echo "make devnet: port $(BACKSTOP_PORT) is in use (a devnet already running?); set BACKSTOP_PORT to a free one" >&2; exit 2; fi
	anvil --port $(BACKSTOP_PORT) --mnemonic "$(DEVNET_MNEMONIC)" --accounts 30 --derivation-path "m/44'/60'/0'/0" \
		--balance 10000 --block-time $(BLOCK_TIME) --hardfork prague $(DEVNET_ARGS)

deploy: install compile
	@$(call need_node,deploy)
	$(BIN)/ape run deploy --network $(NETWORK) $(DEPLOY_ARGS)

clean:
	rm -rf $(VENV) node_modules .vvm .build reports

# make keeper [KEEPER_ACCOUNT=<ape alias>|TEST::<i>] [ENGINE=0x...] [METRICS_PORT=9464] [KEEPER_ARGS="--dry-run ..."]
# reads deployments/<network>.json (make deploy) unless ENGINE is given; joins
# the node already running for $(NETWORK) (docs/keeper.md has every option).
KEEPER_ACCOUNT ?= TEST::3
METRICS_PORT ?= 9464
keeper: install compile
	@$(call need_node,keeper)
	$(BIN)/python -m bots.keeper --network $(NETWORK) --account $(KEEPER_ACCOUNT) $(if $(ENGINE),--engine $(ENGINE)) \
		--metrics-port $(METRICS_PORT) $(KEEPER_ARGS)

# The differential state machine in process (revm): 100,000 steps by
# default; STEPS=N (or BACKSTOP_DEEP_STEPS=N) for any N >= 1. Under 20,000
# steps it is a quick check: labels not reached are listed, not failed.
fuzz-deep: install
	HYPOTHESIS_PROFILE=deep $(if $(STEPS),BACKSTOP_DEEP_STEPS="$(STEPS)") $(BIN)/pytest tests/stateful/test_machine_revm.py -q -p no:ape_test

bench: install compile
	$(BIN)/ape run bench --network $(NETWORK)

# The risk lab (docs/risk.md; issue 18): the ADL policy table on the seed
# crash and the October-style crash with 10,000 accounts (reports/risk/
# policy-table.md), then a fund-size sweep (reports/risk/sweep/). A few
# minutes in process; RISK_SWEEP_ARGS="--local-cluster 2" or "--cluster
# tcp://host:8786" runs the sweep on Dask, "--scenarios 500" runs more.
risk: install
	mkdir -p reports/risk
	$(BIN)/python -m risk policies --accounts 10000 --path seed --path october --markdown reports/risk/policy-table.md
	$(BIN)/python -m risk sweep --accounts 500 --scenarios 100 --funds 0,50000,250000,1000000 --out reports/risk/sweep $(RISK_SWEEP_ARGS)

# A lab scenario replayed on the devnet contracts, event for event (also in make test).
risk-check: install compile
	scripts/with_anvil.sh $(BIN)/ape test tests/risk/test_devnet_equivalence.py --network $(NETWORK) -q

# The lab's speed: 10,000 accounts through 299 ticks, a 1,000-scenario sweep
# on one core and on a 2-worker local Dask cluster; writes bench/risk.json.
risk-bench: install
	$(BIN)/python scripts/risk_bench.py

# Mutation check (issue 19; not part of make test, about an hour on 2 cores):
# each change in tests/mutants/catalog.py applied alone to a copy of HEAD in
# /tmp, the model tests and the machine's ci run on revm (seeds 1, 2, 3) run
# on it; prints the kill table, writes bench/mutants.json.
# MUTANTS_ARGS="-j 2", "--only tie-break", "--source worktree", "--check".
mutants: install
	$(BIN)/python -m tests.mutants.run $(MUTANTS_ARGS)
