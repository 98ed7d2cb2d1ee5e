#!/usr/bin/env bash
# kcat_embedded_test.sh proves that a real outside Kafka client, kcat
# (librdkafka), can use the embedded development broker: it produces and
# consumes (plain and as a consumer group), and after the broker restarts on
# the same address and data directory the records are still there and new
# ones continue the offsets.
#
# It installs kcat when missing (apt-get, as root), builds
# kafkabridge/internal/devbroker, and runs it on a free loopback port with a
# temporary data directory. Everything it starts is stopped on exit.
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
TOPIC=kcat-test
KCAT_TIMEOUT=30 # seconds for any one kcat run
START_TIMEOUT=30 # seconds for the broker to print its address

fail() {
	printf 'FAIL kcat_embedded_test: %s\n' "$*" >&2
	exit 1
}
step() { printf 'kcat_embedded_test: %s\n' "$*" >&2; }

WORK=$(mktemp -d)
BROKER_PID=

stop_broker() {
	if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
		kill -TERM "$BROKER_PID" 2>/dev/null || true
		# Give it time to save its state, then insist.
		for _ in $(seq 100); do
			kill -0 "$BROKER_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$BROKER_PID" 2>/dev/null || true
		wait "$BROKER_PID" 2>/dev/null || true
	fi
	BROKER_PID=
}

cleanup() {
	local rc=$?
	stop_broker
	if ((rc != 0)) && [[ -s $WORK/broker.err ]]; then
		printf -- '--- devbroker stderr ---\n' >&2
		cat "$WORK/broker.err" >&2
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

# --- kcat ---------------------------------------------------------------------
if ! command -v kcat >/dev/null 2>&1; then
	((EUID == 0)) || fail "kcat is not installed and we are not root; Debian: apt-get install kcat"
	step "installing kcat"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y kcat >"$WORK/apt.log" 2>&1; then
		DEBIAN_FRONTEND=noninteractive apt-get update >>"$WORK/apt.log" 2>&1 || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y kcat >>"$WORK/apt.log" 2>&1 ||
			{ cat "$WORK/apt.log" >&2; fail "could not install kcat"; }
	fi
fi
command -v kcat >/dev/null 2>&1 || fail "kcat is still not on PATH"

# --- broker -------------------------------------------------------------------
step "building the embedded broker"
if ! command -v go >/dev/null 2>&1; then export PATH=/usr/local/go/bin:$PATH; fi
(cd "$REPO_DIR" && go build -o "$WORK/devbroker" ./kafkabridge/internal/devbroker) || fail "go build failed"

# start_broker ADDR starts the broker on ADDR with the test's data directory
# and sets ADDR to the address it listens on.
start_broker() {
	: >"$WORK/broker.out"
	"$WORK/devbroker" -addr "$1" -data-dir "$WORK/kafka" -topic "$TOPIC:2" \
		>"$WORK/broker.out" 2>>"$WORK/broker.err" &
	BROKER_PID=$!
	local deadline=$((SECONDS + START_TIMEOUT))
	ADDR=
	while [[ -z $ADDR ]]; do
		kill -0 "$BROKER_PID" 2>/dev/null || fail "the broker exited at start"
		((SECONDS < deadline)) || fail "the broker printed no address within ${START_TIMEOUT}s"
		ADDR=$(head -n 1 "$WORK/broker.out")
		[[ -n $ADDR ]] || sleep 0.1
	done
	[[ $ADDR =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "unexpected broker address '$ADDR'"
}

kcat_() { timeout "$KCAT_TIMEOUT" kcat -b "$ADDR" -q "$@"; }

# consume_all prints partition:offset:key:value for every record of the
# topic, in partition then offset order, and exits at the end of the log.
consume_all() {
	kcat_ -C -t "$TOPIC" -o beginning -e -f '%p:%o:%k:%s\n' | sort -t: -k1,1n -k2,2n
}

expect() { # expect WHAT WANT GOT
	[[ $2 == "$3" ]] || fail "$1: want
$2
got
$3"
}

start_broker 127.0.0.1:0
step "broker at $ADDR"

kcat_ -L -t "$TOPIC" | grep -q "2 partitions" || fail "kcat does not see the topic's 2 partitions"

step "producing with kcat"
printf 'cart-1:hello\ncart-2:world\n' | kcat_ -P -t "$TOPIC" -p 0 -K: || fail "kcat could not produce"
printf 'cart-3:other\n' | kcat_ -P -t "$TOPIC" -p 1 -K: || fail "kcat could not produce"

step "consuming with kcat"
expect "records read back" "0:0:cart-1:hello
0:1:cart-2:world
1:0:cart-3:other" "$(consume_all)"

step "consuming with a kcat consumer group"
got=$(kcat_ -G kcat-group -X auto.offset.reset=earliest -e -f '%k:%s\n' "$TOPIC" | sort)
expect "records read by the group" "cart-1:hello
cart-2:world
cart-3:other" "$got"

step "restarting the broker on $ADDR with the same data directory"
stop_broker
start_broker "$ADDR"
printf 'cart-4:again\n' | kcat_ -P -t "$TOPIC" -p 0 -K: || fail "kcat could not produce after the restart"
expect "records after the restart" "0:0:cart-1:hello
0:1:cart-2:world
0:2:cart-4:again
1:0:cart-3:other" "$(consume_all)"

step "ok"
