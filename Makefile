# The two commands a user needs: `make run` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
LEVEL ?= 2
PORT ?= 8000
PG_BIN_GLOB := /usr/lib/postgresql/*/bin/initdb

.PHONY: run test fuzz lint fmt docs docs-build docs-check docs-sync bench scaleout deps postgres nginx chromium clean

run: deps $(if $(filter 3,$(LEVEL)),postgres) ## start example LEVEL (default 2) on localhost:$(PORT)
	$(BIN)/python scripts/run_example.py --level $(LEVEL) --port $(PORT)

test: deps postgres nginx chromium ## the whole suite: examples over HTTP, real PostgreSQL, nginx and a browser, docs drift, mkdocs --strict, ruff
	OPENAI_AGENTS_DISABLE_TRACING=1 $(BIN)/python -m pytest -q

FUZZ_EXAMPLES ?= 20000
fuzz: deps postgres ## the generated-input proof at FUZZ_EXAMPLES bodies per level; failures kept in var/hypothesis
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) OPENAI_AGENTS_DISABLE_TRACING=1 $(BIN)/python -m pytest -q -s tests/test_fuzz.py

lint: deps
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

fmt: deps
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

docs: deps ## serve the site on localhost:8001
	$(BIN)/mkdocs serve -a 127.0.0.1:8001

docs-build: deps
	$(BIN)/mkdocs build --strict

docs-check: deps chromium ## build the site strictly, check every internal link and anchor, check it in Chromium
	$(BIN)/python -m pytest -q tests/test_site.py

docs-sync: deps ## rewrite every Python block in SKILL.md and references/ from its source region
	$(BIN)/python tests/docs_snippets.py --write

bench: deps postgres
	$(BIN)/python bench/run.py

scaleout: deps postgres ## Level 3 on two instances, then on --workers 2: 200 conversations x 5 turns, read back from PostgreSQL
	$(BIN)/python bench/scaleout.py

deps: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || $(call apt,python3 python3-venv python3-pip)
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
		print("\n".join(p["dependencies"] + p["optional-dependencies"]["dev"]))' > $(VENV)/requirements.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check -r $(VENV)/requirements.txt
	@rm -f $(VENV)/.installed-* && touch $@

postgres: ## PostgreSQL server binaries (the tests and LEVEL=3 start their own cluster on loopback)
	@ls $(PG_BIN_GLOB) >/dev/null 2>&1 || $(call apt,postgresql)

nginx: ## nginx, for the tests that stream through a real reverse proxy (each starts its own, on loopback)
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || $(call apt,nginx)
chromium: ## Debian's Chromium for the browser tests (Playwright launches it; it never downloads a browser)
	@[ -x /usr/bin/chromium ] || $(call apt,chromium)

clean:
	rm -rf $(VENV) site var

# apt-get install as root when something is missing; otherwise say what to install.
define apt
	{ if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1) >/dev/null; \
	else echo "missing: run 'sudo apt-get install -y $(1)'" >&2; exit 1; fi; }
endef
