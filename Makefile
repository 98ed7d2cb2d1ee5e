# The README's two commands: `make run` starts the server, `make test` runs
# every test (.ci/run calls exactly that). Both provision PostgreSQL first with
# ./init_dev.sh, which records the server's URL in $(DEV_DIR)/env.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

DEV_DIR ?= .dev
export DEV_DIR

# LOAD_ENV exports the variables of $(DEV_DIR)/env (DATABASE_URL) to the rest of
# its recipe line. It reads the file in the same shell as the command that uses
# it, because init_dev.sh may have written the file earlier in this very run.
LOAD_ENV = set -a && . "$(DEV_DIR)/env" && set +a &&

.PHONY: run test fmt-check bench bench-smoke clean

run:
	./init_dev.sh
	$(LOAD_ENV) exec go run ./cmd/server

test:
	./init_dev.sh
	tests/init_dev_test.sh
	$(MAKE) --no-print-directory fmt-check
	go vet ./...
	$(LOAD_ENV) go test -race -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory fuzz-smoke
	tests/kcat_embedded_test.sh
	$(LOAD_ENV) tests/kcat_server_test.sh
	$(MAKE) --no-print-directory bench-smoke

# fmt-check fails when gofmt would change any tracked Go file.
fmt-check:
	@unformatted=$$(git ls-files -z -- '*.go' | xargs -0 -r gofmt -l); \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files need formatting (run gofmt -w):"; \
		echo "$$unformatted"; \
		exit 1; \
	fi

# FUZZ_TARGETS are the fuzz targets, as package:Target: every decoder of
# outside input (HTTP bodies, DCB queries, Kafka messages, tokens, hashes).
FUZZ_TARGETS := \
	./httpapi:FuzzDCBAppend ./httpapi:FuzzDCBRead ./httpapi:FuzzDecodeJSON \
	./slices/cart:FuzzAddItemBody ./slices/cart:FuzzRemoveItemBody ./slices/cart:FuzzClearAndSubmitBodies \
	./slices/cart:FuzzChangeInventoryBody ./slices/cart:FuzzChangePriceBody ./slices/cart:FuzzMoney \
	./slices/cart:FuzzInventoryMessage ./slices/cart:FuzzPriceChangeMessage \
	./slices/identity:FuzzRegisterAndLoginBodies ./slices/identity:FuzzChangePasswordBody \
	./slices/identity:FuzzUserActionPaths ./slices/identity:FuzzTokenVerify ./slices/identity:FuzzParsePHC
FUZZTIME ?= 2m
FUZZ_SMOKE_TIME ?= 500x
FUZZ_PARALLEL ?= 2

.PHONY: fuzz fuzz-smoke

# fuzz runs every fuzz target for FUZZTIME each, one after the other (go
# test -fuzz takes one target of one package), with FUZZ_PARALLEL workers.
# New interesting inputs go to $(go env GOCACHE)/fuzz; a crasher is written
# to the package's testdata/fuzz, where it stays as a regression input.
fuzz:
	./init_dev.sh
	$(LOAD_ENV) for t in $(FUZZ_TARGETS); do \
		echo "== $$t for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -parallel $(FUZZ_PARALLEL) "$${t%%:*}" || exit 1; \
	done

# fuzz-smoke runs every fuzz target briefly (FUZZ_SMOKE_TIME each: a count of
# executions, not a duration, because a duration can run out while the seeds'
# baseline is still being gathered, which go test reports as a failure; about
# a minute in all), so that none rots; make test runs it.
fuzz-smoke:
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZ_SMOKE_TIME)

# bench runs the benchmark harness (bench/, a module of its own; issue #6):
# every scenario on dedicated databases, 10 to 15 minutes on 2 cores. The
# table goes to stdout, progress to stderr, the figures to
# bench/results/latest.json. BENCHMARKS.md says how to read them.
bench:
	./init_dev.sh
	$(LOAD_ENV) cd bench && go run . $(BENCH_FLAGS)

# bench-smoke checks and runs the harness the quick way (small tables, 1s
# phases: well under a minute), so that it cannot rot; make test runs it.
bench-smoke:
	./init_dev.sh
	cd bench && go vet ./... && test -z "$$(gofmt -l .)"
	$(LOAD_ENV) cd bench && go test -count=1 ./...
	$(LOAD_ENV) cd bench && go run . -quick -json results/smoke.json

# clean stops the private PostgreSQL cluster, if init_dev.sh started one, and
# removes its state.
clean:
	./init_dev.sh stop
	rm -rf -- "$(DEV_DIR)"

# reliability runs the long form of the reliability suite (tests/, issue #7):
# 100 crashes, PostgreSQL restarts, Kafka outages, three replicas and a
# 5-minute load run, each checked against the invariants; one SUMMARY line
# per test. make test runs the short form.
.PHONY: reliability
reliability:
	./init_dev.sh
	$(LOAD_ENV) RELIABILITY_LONG=1 go test -race -count=1 -timeout 90m -v -run '^TestReliability' ./tests/
