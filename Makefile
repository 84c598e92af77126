# Portico: the two commands from the README, and a few more.
#
#   make run    the whole stack on embedded defaults (SQLite, in-memory cache); prints the URL
#   make test   unit and integration tests (PostgreSQL/Redis too when PORTICO_TEST_PG_URL /
#               PORTICO_TEST_REDIS_URL are set)

CARGO ?= cargo
PORTICO_DATA_DIR ?= ./data
export PORTICO_DATA_DIR

.PHONY: run run-release build test lint fmt bench load compose-check

run:
	$(CARGO) run -q -p portico -- dev

run-release:
	$(CARGO) run -q --release -p portico -- dev

build:
	$(CARGO) build -p portico

test:
	$(CARGO) test --workspace --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) bench -p portico-gateway --bench gateway

load:
	./bench/load.sh

compose-check:
	python3 deploy/check-compose.py
