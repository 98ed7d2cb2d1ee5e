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

.PHONY: run test fmt-check bench clean

run:
	./init_dev.sh
	$(LOAD_ENV) exec go run ./cmd/server

test:
	./init_dev.sh
	tests/init_dev_test.sh
	$(MAKE) --no-print-directory fmt-check
	go vet ./...
	$(LOAD_ENV) go test -race -count=1 -timeout 30m ./...
	tests/kcat_embedded_test.sh
	$(LOAD_ENV) tests/kcat_server_test.sh

# fmt-check fails when gofmt would change any tracked Go file.
fmt-check:
	@unformatted=$$(git ls-files -z -- '*.go' | xargs -0 -r gofmt -l); \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files need formatting (run gofmt -w):"; \
		echo "$$unformatted"; \
		exit 1; \
	fi

# bench is a placeholder: one iteration of each benchmark of the event store.
bench:
	./init_dev.sh
	$(LOAD_ENV) go test -run '^$$' -bench . -benchtime 1x ./eventstore/

# clean stops the private PostgreSQL cluster, if init_dev.sh started one, and
# removes its state.
clean:
	./init_dev.sh stop
	rm -rf -- "$(DEV_DIR)"
