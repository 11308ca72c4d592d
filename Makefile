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

.PHONY: install compile test demo deploy keeper fuzz-deep bench clean

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
	scripts/with_anvil.sh $(BIN)/ape test tests/ --network $(NETWORK) -q

demo: install compile
	$(BIN)/ape run demo --network $(NETWORK)

deploy: install compile
	$(BIN)/ape run deploy --network $(NETWORK)

clean:
	rm -rf $(VENV) node_modules .vvm .build reports

# ---- targets owned by later work (keeper, fuzzing, benchmark)
# make keeper ENGINE=0x... [KEEPER_ACCOUNT=<ape alias>|TEST:<i>] [KEEPER_ARGS="--dry-run --state-file f.json"]
# joins the node already running for $(NETWORK) (see README, "Running the keeper").
keeper: install compile
	@test -n "$(ENGINE)" || { echo "usage: make keeper ENGINE=<PerpEngine address> [KEEPER_ACCOUNT=alias|TEST:3] [KEEPER_ARGS=...]"; exit 2; }
	$(BIN)/python -m bots.keeper --network $(NETWORK) --engine $(ENGINE) --account $(or $(KEEPER_ACCOUNT),TEST:3) $(KEEPER_ARGS)

# The differential state machine in process (revm): 100,000 steps by
# default (BACKSTOP_DEEP_STEPS=N for more; never below 20,000).
fuzz-deep: install
	HYPOTHESIS_PROFILE=deep $(BIN)/pytest tests/stateful/test_machine_revm.py -q -p no:ape_test

bench: install compile
	$(BIN)/ape run bench --network $(NETWORK)
