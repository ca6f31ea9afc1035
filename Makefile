# Targets a newcomer needs. `make run` is the README's first command: it sets up .venv and runs the
# demo on the embedded example fixture; `make test` is the second.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup generated-code check-generated test lint run run-cluster bench bench-quick clean
.PHONY: etcd-code check-etcd-code

# Python 3.11+ is checked before anything is created; a venv left by an older Python (or a broken
# one) is removed first, so switching interpreters needs no `make clean`. pip shows its progress.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "gce-plugin needs Python 3.11 or newer, but '$(PYTHON)' is $$($(PYTHON) --version 2>&1 || echo missing)." >&2; \
	  echo "Install one and run e.g.: make $(MAKECMDGOALS) PYTHON=python3.11" >&2; exit 1; }
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || rm -rf $(VENV)
	@echo "== setting up $(VENV): installing the project and its dev tools (a few minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar on --upgrade pip
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

generated-code: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH PYTHON=$(abspath $(BIN))/python bash scripts/generate.sh

# Fails when gen/ does not match proto/ (CI runs this).
check-generated: generated-code
	@git diff --exit-code --stat gen/ && test -z "$$(git status --porcelain gen/)" \
	  || { echo "gen/ is stale: run 'make generated-code' and commit gen/" >&2; exit 1; }

test: $(STAMP)
	bash scripts/test.sh

lint: $(STAMP)
	$(BIN)/ruff check gce_plugin tests bench
	$(BIN)/ruff format --check gce_plugin tests bench
	$(BIN)/mypy

run: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/gce-plugin demo

run-cluster: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m gce_plugin.demo_cluster

bench: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m bench

bench-quick: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# The etcd v3 API subset the store uses (gce_plugin/store/etcdpb), kept apart from gen/.
etcd-code: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH PYTHON=$(abspath $(BIN))/python bash scripts/generate-etcd.sh

check-etcd-code: etcd-code
	@git diff --exit-code --stat gce_plugin/store/etcdpb/ && test -z "$$(git status --porcelain gce_plugin/store/etcdpb/)" \
	  || { echo "gce_plugin/store/etcdpb is stale: run 'make etcd-code' and commit it" >&2; exit 1; }
