#!/usr/bin/env bash
# init_dev_test.sh proves that init_dev.sh starts, reuses and stops a private
# PostgreSQL cluster (its step b) when no server answers at DATABASE_URL.
#
# It works in a fresh temporary DEV_DIR and points DATABASE_URL at a port
# where nothing listens, so the system server on 5432, if any, is neither
# used nor touched. Needs PostgreSQL's server programs installed.
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
INIT_DEV=$REPO_DIR/init_dev.sh
SECOND_RUN_LIMIT=5 # seconds; a second run only checks, so it must be quick

fail() {
	printf 'FAIL init_dev_test: %s\n' "$*" >&2
	exit 1
}
step() { printf 'init_dev_test: %s\n' "$*" >&2; }

DEV_DIR=$(mktemp -d)
export DEV_DIR

# cluster_dir prints where init_dev.sh keeps the cluster: $DEV_DIR/pg, unless
# the postgres user could not reach it there and it recorded another place.
cluster_dir() {
	if [[ -s $DEV_DIR/pg/root ]]; then cat "$DEV_DIR/pg/root"; else echo "$DEV_DIR/pg"; fi
}

# Stop whatever the test started and remove it, even when it fails half-way.
cleanup() {
	local dir
	dir=$(cluster_dir)
	"$INIT_DEV" stop >/dev/null 2>&1 || true
	if [[ $dir != "$DEV_DIR/pg" ]]; then
		rm -rf "$dir"
		rmdir "$(dirname "$dir")" 2>/dev/null || true # the shared parent, once empty
	fi
	rm -rf "$DEV_DIR"
}
trap cleanup EXIT

server_programs_installed() {
	command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
server_programs_installed ||
	fail "PostgreSQL's server programs (initdb, pg_ctl, postgres) are not installed; Debian: apt-get install postgresql"

psql_bin() {
	command -v psql 2>/dev/null && return 0
	{ compgen -G '/usr/lib/postgresql/*/bin/psql' || true; } | sort -V -r | head -n 1
}
PSQL=$(psql_bin)
[[ -n $PSQL ]] || fail "psql is not installed"

# query URL SQL prints the bare result of one statement.
query() { PGCONNECT_TIMEOUT=3 "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# listening PORT is true when something listens on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# dead_port prints a port where nothing listens, away from the range
# init_dev.sh picks private clusters from (54329 and up), so that the
# cluster it starts cannot end up answering at our "dead" DATABASE_URL.
dead_port() {
	local port
	for ((port = 45432; port < 45532; port++)); do
		if ! listening "$port"; then
			echo "$port"
			return
		fi
	done
	fail "no free port in 45432..45531"
}

# run_init_dev prints init_dev.sh's stdout (the URL); its log goes to stderr.
run_init_dev() { "$INIT_DEV" || fail "init_dev.sh exited with status $?"; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# pid_alive PID is true while PID runs; a zombie (exited, not yet reaped by
# whoever adopted it) does not count.
pid_alive() {
	kill -0 "$1" 2>/dev/null || return 1
	[[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

# wait_gone PID waits up to 10 s for PID to end: pg_ctl stop returns once the
# server removed its pid file, a moment before the process itself exits.
wait_gone() {
	local deadline=$((SECONDS + 10))
	while pid_alive "$1"; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

system_before=no
if listening 5432; then system_before=yes; fi

DATABASE_URL=postgres://postgres@127.0.0.1:$(dead_port)/postgres
export DATABASE_URL
step "DEV_DIR=$DEV_DIR, DATABASE_URL=$DATABASE_URL (nothing listens there)"

# --- first run: creates and starts the private cluster ----------------------
url=$(run_init_dev)
step "first run printed $url"
[[ $url =~ ^postgres://postgres@127\.0\.0\.1:([0-9]+)/dcbkit\?sslmode=disable$ ]] ||
	fail "unexpected URL from the first run: $url"
port=${BASH_REMATCH[1]}
[[ $port != 5432 ]] || fail "init_dev.sh used port 5432 instead of a private cluster"
[[ $(<"$DEV_DIR/pg/port") == "$port" ]] || fail "$DEV_DIR/pg/port does not hold $port"
[[ $(<"$DEV_DIR/env") == "DATABASE_URL=$url" ]] || fail "$DEV_DIR/env does not hold the URL"
[[ $(query "$url" 'SELECT 1') == 1 ]] || fail "SELECT 1 failed on $url"
[[ $(query "$url" 'SELECT current_database()') == dcbkit ]] || fail "not connected to database dcbkit"
# The server must be the private one: it runs from the cluster init_dev.sh made.
data_dir=$(cluster_dir)/data
[[ $(query "$url" 'SHOW data_directory') == "$data_dir" ]] || fail "the server on $port does not run from $data_dir"
[[ $(query "$url" 'SHOW max_connections') == 200 ]] || fail "max_connections is not 200"
[[ $(query "$url" 'SHOW fsync') == on ]] || fail "fsync is not on"
pid=$(head -n 1 "$data_dir/postmaster.pid")
pid_alive "$pid" || fail "postmaster $pid is not running"

# --- second run: reuses the same cluster, quickly, changing nothing ---------
env_before=$(stat -c '%Y %s' "$DEV_DIR/env")
start=$(now_ms)
url2=$(run_init_dev)
elapsed=$(($(now_ms) - start))
step "second run printed $url2 in ${elapsed} ms"
[[ $url2 == "$url" ]] || fail "second run printed $url2, first printed $url"
((elapsed < SECOND_RUN_LIMIT * 1000)) || fail "second run took ${elapsed} ms (limit ${SECOND_RUN_LIMIT}s)"
[[ $(head -n 1 "$data_dir/postmaster.pid") == "$pid" ]] || fail "second run restarted the server"
[[ $(stat -c '%Y %s' "$DEV_DIR/env") == "$env_before" ]] || fail "second run rewrote $DEV_DIR/env"
[[ $(query "$url2" 'SELECT 1') == 1 ]] || fail "SELECT 1 failed after the second run"

# --- stop: the server goes away ---------------------------------------------
"$INIT_DEV" stop || fail "init_dev.sh stop exited with status $?"
wait_gone "$pid" || fail "postmaster $pid still runs 10 s after stop"
! listening "$port" || fail "something still listens on $port after stop"
"$INIT_DEV" stop || fail "a second init_dev.sh stop failed (it must be a no-op)"

# --- third run: a stopped cluster is started again, same URL ----------------
url3=$(run_init_dev)
[[ $url3 == "$url" ]] || fail "restart printed $url3, expected $url"
[[ $(query "$url3" 'SELECT 1') == 1 ]] || fail "SELECT 1 failed after restarting the cluster"
"$INIT_DEV" stop || fail "init_dev.sh stop exited with status $?"
! listening "$port" || fail "something still listens on $port after the last stop"

# --- the system server, if there was one, is still there --------------------
if [[ $system_before == yes ]] && ! listening 5432; then
	fail "the server on 5432 was up before the test and is gone now"
fi

step "ok: private cluster created on port $port, reused, stopped, restarted, stopped"
