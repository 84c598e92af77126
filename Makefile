# Portico: the two commands from the README, and a few more.
#
#   make run    the whole stack on embedded defaults (SQLite, in-memory cache); prints the URL
#   make test   unit and integration tests (PostgreSQL/Redis too when PORTICO_TEST_PG_URL /
#               PORTICO_TEST_REDIS_URL are set)

CARGO ?= cargo
PORTICO_DATA_DIR ?= ./data
export PORTICO_DATA_DIR

.PHONY: run run-release build test lint fmt contract bench load workflow-load media-bench billing-load monitoring-load fuzz fuzz-all compose-check backup-drill smoke k8s-check bpmnlint-agreement bpmnlint-bench

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

# The API contract judged by outside tools against a running `portico dev` (contract/run.sh;
# the tools are pinned in contract/, and .ci/run installs them).
contract:
	./contract/run.sh

backup-drill:
	./deploy/backup-drill.sh

smoke:
	./deploy/smoke.sh

k8s-check:
	./deploy/k8s/check.sh

# BPMN lint against bpmnlint itself (npm, pinned in bench/bpmnlint/): every rule on Portico's own
# corpus (CI), and the speed on generated diagrams. bpmnlint's own 187 fixtures need a checkout:
# ./bench/bpmnlint-agreement.sh PATH/TO/bpmnlint
bpmnlint-agreement:
	./bench/bpmnlint-agreement.sh --files bench/bpmnlint/corpus 100

bpmnlint-bench:
	./bench/bpmnlint-bench.sh

bench:
	$(CARGO) bench -p portico-gateway --bench gateway

load:
	./bench/load.sh

workflow-load:
	./bench/workflow-load.sh

media-bench:
	./bench/media-bench.sh

billing-load:
	./bench/billing-load.sh

monitoring-load:
	./bench/monitoring-load.sh

# The image decoder under libFuzzer (nightly toolchain; installs cargo-fuzz when missing).
FUZZ_SECONDS ?= 60
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install -q cargo-fuzz
	cd services/media/pipeline && $(CARGO) +nightly fuzz run decode -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024

# Every fuzz target of the three fuzz workspaces, FUZZ_SECONDS each (make fuzz-all FUZZ_SECONDS=N):
# the image decoder, the workflow JSON and BPMN readers, and the gateway's parsers.
FUZZ_TARGETS := services/media/pipeline/fuzz:decode \
	services/workflow/analyzer/fuzz:workflow_json services/workflow/analyzer/fuzz:bpmn \
	gateway/fuzz:request_id gateway/fuzz:traceparent gateway/fuzz:jwt_header \
	gateway/fuzz:tus_headers gateway/fuzz:multipart
fuzz-all:
	command -v cargo-fuzz >/dev/null || $(CARGO) install -q cargo-fuzz
	set -e; for t in $(FUZZ_TARGETS); do \
		dir=$${t%%:*}; target=$${t#*:}; echo "== $$dir $$target"; \
		(cd $$dir && $(CARGO) +nightly fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048); \
	done

compose-check:
	python3 deploy/check-compose.py
