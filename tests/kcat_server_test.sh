#!/usr/bin/env bash
# kcat_server_test.sh proves that the server, started as `make run` starts it
# (no KAFKA_BROKERS: the embedded development broker), talks to a real
# outside Kafka client: kcat (librdkafka) produces an inventory message on
# the topic "inventories", and the inventory appears at GET /inventories/{id}.
#
# It needs DATABASE_URL (the Makefile exports the one init_dev.sh wrote),
# creates a database of its own there and drops it on exit, installs kcat when
# missing (as root), builds the server and runs it on free loopback ports.
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
TIMEOUT=60 # seconds for the server to start, and for the message to arrive

fail() {
	printf 'FAIL kcat_server_test: %s\n' "$*" >&2
	exit 1
}
step() { printf 'kcat_server_test: %s\n' "$*" >&2; }

[[ -n ${DATABASE_URL:-} ]] || fail "DATABASE_URL is not set (run it through make test)"
if ! command -v go >/dev/null 2>&1; then export PATH=/usr/local/go/bin:$PATH; fi
PSQL=$(command -v psql || compgen -G '/usr/lib/postgresql/*/bin/psql' | sort -V | tail -n 1)
[[ -x $PSQL ]] || fail "psql not found"

WORK=$(mktemp -d)
DB="kcat_test_$$_$RANDOM"
SERVER_PID=
cleanup() {
	local rc=$?
	if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	"$PSQL" -X -q -d "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
	if ((rc != 0)) && [[ -s $WORK/server.log ]]; then
		printf -- '--- server log (tail) ---\n' >&2
		tail -n 40 "$WORK/server.log" >&2
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v kcat >/dev/null 2>&1; then
	((EUID == 0)) || fail "kcat is not installed and we are not root; Debian: apt-get install kcat"
	step "installing kcat"
	DEBIAN_FRONTEND=noninteractive apt-get install -y kcat >"$WORK/apt.log" 2>&1 ||
		{ DEBIAN_FRONTEND=noninteractive apt-get update >>"$WORK/apt.log" 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y kcat >>"$WORK/apt.log" 2>&1; } ||
		{ cat "$WORK/apt.log" >&2; fail "could not install kcat"; }
fi

step "building the server"
(cd "$REPO_DIR" && go build -o "$WORK/server" ./cmd/server) || fail "go build failed"
"$PSQL" -X -q -d "$DATABASE_URL" -c "CREATE DATABASE $DB" || fail "could not create database $DB"
DB_URL=$(sed -E "s#^(postgres(ql)?://[^/]*)/[^?]*#\1/$DB#" <<<"$DATABASE_URL")

step "starting the server with the embedded broker"
(cd "$WORK" && DATABASE_URL=$DB_URL HTTP_ADDR=127.0.0.1:0 ADMIN_ADDR=127.0.0.1:0 \
	KAFKA_EMBEDDED_ADDR=127.0.0.1:0 KAFKA_DATA_DIR="$WORK/kafka" exec ./server >"$WORK/server.log" 2>&1) &
SERVER_PID=$!

# addr MSG prints the address logged with the line whose msg starts with MSG.
addr() {
	{ grep -o "\"msg\":\"$1[^\"]*\".*\"addr\":\"[^\"]*\"" "$WORK/server.log" || true; } |
		head -n 1 | sed -E 's/.*"addr":"([^"]*)".*/\1/'
}
deadline=$((SECONDS + TIMEOUT))
HTTP= BROKER=
while [[ -z $HTTP || -z $BROKER ]]; do
	kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited at start"
	((SECONDS < deadline)) || fail "the server did not start within ${TIMEOUT}s"
	sleep 0.1
	HTTP=$(addr "http listening")
	BROKER=$(addr "embedded development Kafka broker")
done
step "server on $HTTP, embedded broker on $BROKER"

PRODUCT=$(cat /proc/sys/kernel/random/uuid)
# A version 7 UUID (the cart's ids): 48 bits of milliseconds, version 7, variant 10.
PRODUCT=$(printf '%012x' "$(($(date +%s%N) / 1000000))" | sed -E 's/^(.{8})(.{4})$/\1-\2/')-7${PRODUCT:15:3}-a${PRODUCT:20:3}-${PRODUCT:24:12}
step "kcat produces inventory 42 for product $PRODUCT"
printf '{"product_uuid":"%s","inventory":42}\n' "$PRODUCT" |
	timeout 30 kcat -b "$BROKER" -t inventories -P -k "$PRODUCT" || fail "kcat could not produce"

while :; do
	body=$(curl -s "http://$HTTP/inventories/$PRODUCT" || true)
	[[ $body == *'"inventory":42'* ]] && break
	((SECONDS < deadline + TIMEOUT)) || fail "GET /inventories/$PRODUCT never showed the inventory; last answer: $body"
	sleep 0.2
done
step "ok: GET /inventories/$PRODUCT answered $body"
