# One command per chore; CI calls the same ones.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
JS_STAMP := tests/js/node_modules/.installed

.PHONY: run test check bench bench-compare bench-relay bench-scale bench-connections bench-pop3 bench-webhooks bench-startup screenshots migration caniemail clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# What serving needs, nothing more: the package and the `speed` extra (uvloop).
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[speed]'
	touch $@

# Tests, lint and benchmarks also need the `test` extra (pytest, Playwright, ruff, mypy...).
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,speed]'
	touch $@ $(RUN_STAMP)

## run: serve with ./relay.toml (SMTP 127.0.0.1:1025, web http://127.0.0.1:8025/)
run: $(RUN_STAMP)
	$(BIN)/relay serve --config relay.toml

# The real Mailpit client (npm mailpit-api) that the compatibility test drives.
$(JS_STAMP): tests/js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tests/js --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: tests/test_mailpit_client.py will be skipped"; fi

## test: the whole suite, one worker per core (pytest-xdist)
test: $(TEST_STAMP) $(JS_STAMP)
	$(BIN)/python -m pytest -n auto --dist worksteal

## check: lint and type-check
check: $(TEST_STAMP)
	$(BIN)/ruff check relay web tests bench
	$(BIN)/ruff format --check relay web tests bench
	$(BIN)/mypy

## bench: ingest speed (beside the aiosmtpd null handler and smtp-sink), list, search and
## count speed with 100,000 stored messages, then the web UI over HTTP on them (list,
## search, a 1 MB message, memory), then the HTML check on large bodies; figures in
## docs/benchmarks.md
bench: $(TEST_STAMP)
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.list_speed
	$(BIN)/python -m bench.ui
	$(BIN)/python -m bench.html_check

## bench-compare: ingest beside a throwaway Postfix on loopback (root, Debian package postfix)
bench-compare: $(TEST_STAMP)
	$(BIN)/python -m bench.compare

## bench-relay: relay mode end to end to a recording sink (messages/s, upstream connections,
## idle delivery delay), beside a throwaway Postfix when root
bench-relay: $(TEST_STAMP)
	$(BIN)/python -m bench.relay

## bench-scale: a million stored messages of 5 KB (seeded in minutes): the UI's list, search,
## the API's totals, relay stats, start, memory, database size, pruning 90% during ingest;
## SCALE_ARGS="--count 100000" for a quicker run, "--pg URL" for PostgreSQL, "--keep DIR" (SQLite)
## or "--pg URL --keep NAME" to seed once and keep it, "--no-prune" to measure it again
bench-scale: $(TEST_STAMP)
	$(BIN)/python -m bench.scale $(SCALE_ARGS)

## bench-connections: 1,000 idle SMTP sessions (memory), the 1,001st (421), 500 sending (p99)
bench-connections: $(TEST_STAMP)
	$(BIN)/python -m bench.connections

## bench-pop3: STAT, LIST, UIDL, RETR and a login on a 1,000-message POP3 mailbox
bench-pop3: $(TEST_STAMP)
	$(BIN)/python -m bench.pop3

## bench-webhooks: events sent per second to a local receiver, ingest with and without a webhook
bench-webhooks: $(TEST_STAMP)
	$(BIN)/python -m bench.webhooks

## bench-startup: how long `relay --help`, `check-config` and `sendmail` take to run
bench-startup: $(TEST_STAMP)
	$(BIN)/python -m bench.startup

## screenshots: refresh docs/screenshots/ from the browser tests
screenshots: $(TEST_STAMP)
	RELAY_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest tests/test_browser.py -k screenshots

## migration: draft the next schema revision from relay/store/schema.py (m="what changed")
migration: $(TEST_STAMP)
	@test -n "$(m)" || { echo 'usage: make migration m="what changed"'; exit 2; }
	$(BIN)/python -c 'import sys; from relay.store import migrate; print(migrate.draft(sys.argv[1]))' "$(m)"

## caniemail: refresh the HTML check's data (relay/checks/caniemail.json and its licence)
## from the npm package caniemail, fetched with npm into a temporary directory; the
## latest release unless told which (make caniemail CANIEMAIL=caniemail@2.0.2)
CANIEMAIL ?= caniemail@latest
caniemail: $(TEST_STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	cd "$$tmp" && npm pack "$(CANIEMAIL)" --silent >/dev/null && tar -xzf caniemail-*.tgz && \
	cd "$(CURDIR)" && $(BIN)/python -m relay.checks.caniemail "$$tmp/package"

clean:
	rm -rf $(VENV) tests/js/node_modules build *.egg-info .pytest_cache .mypy_cache .ruff_cache
