#!/usr/bin/env bash
# init_dev.sh provisions the PostgreSQL server this project runs and tests
# against, makes sure the project database exists on it, and records its URL.
#
#   ./init_dev.sh        provision (idempotent); prints DATABASE_URL on stdout
#   ./init_dev.sh stop   stop the private cluster, if this script started one
#
# It takes the first way that works (docs: runtime.md, "Setting up and running"):
#   a. the server at $DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres;
#   b. a private cluster under $DEV_DIR/pg, from installed PostgreSQL binaries;
#   c. the postgres service of docker-compose.yml, when a Docker engine answers;
#   d. as root with apt-get: install PostgreSQL, then (b);
#   e. otherwise: print what to install and exit 1.
# It writes "DATABASE_URL=<url>" to $DEV_DIR/env, where the Makefile reads it.
#
# Environment:
#   DATABASE_URL  server to try first (a postgres:// URL)
#   DEV_DIR       where state lives (default: <repo>/.dev)
#   DCBKIT_DB     name of the project database (default: dcbkit)
#
# Progress goes to stderr, one line per step; stdout carries only the URL, so
# callers can write url=$(./init_dev.sh).
set -euo pipefail
# Failures inside $(...) must stop the script too (bash >= 4.4; older bash,
# e.g. macOS's 3.2, simply lacks the option).
shopt -s inherit_errexit 2>/dev/null || true

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
DEV_DIR=${DEV_DIR:-$REPO_DIR/.dev}
DB_NAME=${DCBKIT_DB:-dcbkit}
DEFAULT_URL=postgres://postgres@127.0.0.1:5432/postgres
FIRST_PORT=54329     # private clusters: first port tried, then upwards
PORT_TRIES=100
READY_TIMEOUT=60     # seconds a starting server gets to answer
PG_USER=postgres     # OS user that runs the private cluster when we are root

# No probe may hang on an unreachable host.
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-3}

log() { printf 'init_dev: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------
# URLs

# redact hides the password of a URL, for log lines.
redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

is_url() { [[ $1 =~ ^postgres(ql)?:// ]]; }

# with_database URL DB prints URL naming database DB, with sslmode=disable
# added unless URL already chose an sslmode (a remote server may require TLS).
with_database() {
	local url=$1 db=$2 query="" rest scheme authority
	if [[ $url == *\?* ]]; then query=${url#*\?}; fi
	rest=${url%%\?*}
	scheme=${rest%%://*}
	rest=${rest#*://}
	authority=${rest%%/*}
	if ! [[ $query =~ (^|&)sslmode= ]]; then query=${query:+$query&}sslmode=disable; fi
	printf '%s://%s/%s?%s\n' "$scheme" "$authority" "$db" "$query"
}

# ---------------------------------------------------------------------------
# PostgreSQL programs

# client_tool NAME prints the path of a client program: from PATH, else from
# the newest /usr/lib/postgresql/*/bin, where Debian keeps them. Empty if none.
client_tool() {
	command -v "$1" 2>/dev/null && return 0
	{ compgen -G "/usr/lib/postgresql/*/bin/$1" || true; } | sort -V -r | head -n 1
}

# sql URL STATEMENT runs one statement and prints bare result rows.
sql() { "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# pg_major DIR prints the major version of the server programs in DIR.
pg_major() { "$1/postgres" --version | sed -nE 's/.*\(PostgreSQL\) ([0-9]+).*/\1/p'; }

# candidate_bin_dirs lists directories that may hold server programs.
candidate_bin_dirs() {
	local tool
	if tool=$(command -v initdb 2>/dev/null); then dirname "$(readlink -f "$tool")"; fi
	compgen -G '/usr/lib/postgresql/*/bin' || true
}

# as_pg runs a command as the user that owns the private cluster. PostgreSQL
# refuses to run as root, so root hands over to $PG_USER. It runs from / since
# the caller's directory may be closed to that user, and every path we pass is
# absolute.
as_pg() {
	if ((EUID != 0)); then
		"$@"
	elif command -v runuser >/dev/null 2>&1; then
		(cd / && runuser -u "$PG_USER" -- "$@")
	else
		(cd / && su "$PG_USER" -s /bin/bash -c "$(printf '%q ' "$@")")
	fi
}

# ---------------------------------------------------------------------------
# Results

# write_env URL records URL in $DEV_DIR/env, touching the file only when the
# URL changed. The line stays unquoted (as docker's --env-file and most .env
# readers expect) unless the URL holds a character the shell would interpret.
write_env() {
	local file=$DEV_DIR/env line plain='^[][A-Za-z0-9_@%+=:,./?~-]+$'
	if [[ $1 =~ $plain ]]; then
		line="DATABASE_URL=$1"
	else
		line="DATABASE_URL='${1//\'/\'\\\'\'}'"
	fi
	if [[ -f $file && $(<"$file") == "$line" ]]; then
		log "$file is up to date"
		return
	fi
	# The URL may carry a password: keep the file private.
	(umask 077 && printf '%s\n' "$line" >"$file.tmp")
	mv "$file.tmp" "$file"
	log "wrote $file"
}

# ensure_database ADMIN_URL creates $DB_NAME on the server unless it exists.
ensure_database() {
	local admin=$1 exists
	exists=$(sql "$admin" "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")
	if [[ $exists == 1 ]]; then
		log "database $DB_NAME exists"
		return
	fi
	# Another run may win the race between our check and CREATE; that is fine.
	if sql "$admin" "CREATE DATABASE $DB_NAME" >/dev/null; then
		log "created database $DB_NAME"
	elif [[ $(sql "$admin" "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") != 1 ]]; then
		die "could not create database $DB_NAME"
	fi
}

# finish URL checks that URL works, records it and prints it.
finish() {
	if [[ -n $PSQL ]] && ! sql "$1" 'SELECT 1' >/dev/null; then
		die "cannot connect to $(redact "$1")"
	fi
	write_env "$1"
	printf '%s\n' "$1"
}

# ---------------------------------------------------------------------------
# a. A server that already answers

# given_server_answers sets ADMIN_URL to a URL on which the given (or
# default) server accepts us: the URL itself, or its "postgres" database when
# the URL names a database that does not exist yet.
given_server_answers() {
	local url=${DATABASE_URL:-$DEFAULT_URL} candidate
	is_url "$url" || die "DATABASE_URL must be a postgres:// URL, got: $(redact "$url")"
	if [[ -z $PSQL || -z $PG_ISREADY ]]; then
		log "psql/pg_isready are not installed; cannot use $(redact "$url")"
		return 1
	fi
	# pg_isready first: it fails fast and quietly when nothing listens.
	if ! "$PG_ISREADY" -q -t 3 -d "$url" 2>/dev/null; then
		log "no server answers at $(redact "$url")"
		return 1
	fi
	for candidate in "$url" "$(with_database "$url" postgres)"; do
		if sql "$candidate" 'SELECT 1' >/dev/null 2>&1; then
			ADMIN_URL=$candidate
			return 0
		fi
	done
	log "a server listens at $(redact "$url") but refuses us:"
	sql "$url" 'SELECT 1' 2>&1 >/dev/null | head -n 3 >&2 || true
	return 1
}

use_given_server() {
	local url=${DATABASE_URL:-$DEFAULT_URL}
	log "using the server at $(redact "$url")"
	ensure_database "$ADMIN_URL"
	finish "$(with_database "$url" "$DB_NAME")"
}

# ---------------------------------------------------------------------------
# b. A private cluster under $DEV_DIR/pg
#
# Layout: $DEV_DIR/pg/{data,log,port} and the server's unix socket in
# $DEV_DIR/pg itself. "port" remembers the port so later runs reuse it.

STATE_DIR=$DEV_DIR/pg

# cluster_root prints the directory holding data/, log and the socket:
# normally $STATE_DIR, or the place recorded in $STATE_DIR/root when the
# cluster had to move (see prepare_cluster_root).
cluster_root() {
	if [[ -s $STATE_DIR/root ]]; then cat "$STATE_DIR/root"; else echo "$STATE_DIR"; fi
}

# find_server_bin sets SERVER_BIN to a directory holding initdb, pg_ctl and
# postgres: the one that made the existing cluster (a data directory only
# runs under its own major version), else the newest.
find_server_bin() {
	local want="" dir major best=-1 version_file
	version_file=$(cluster_root)/data/PG_VERSION
	if [[ -s $version_file ]]; then want=$(<"$version_file"); fi
	SERVER_BIN=""
	while IFS= read -r dir; do
		[[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]] || continue
		major=$(pg_major "$dir")
		[[ -n $major ]] || continue
		if [[ -n $want ]]; then
			if [[ $major == "$want" ]]; then SERVER_BIN=$dir; fi
		elif ((major > best)); then
			best=$major
			SERVER_BIN=$dir
		fi
	done < <(candidate_bin_dirs)
	if [[ -z $SERVER_BIN && -n $want ]]; then
		die "the cluster in $(cluster_root)/data needs PostgreSQL $want programs; install them or remove $(cluster_root)"
	fi
	[[ -n $SERVER_BIN ]]
}

# prepare_cluster_root sets CLUSTER_ROOT and makes it a directory the server
# user owns and can reach.
#
# As root the server runs as $PG_USER, which must be able to search every
# directory on the way to its data. We own DEV_DIR, so we open it for search
# (o+x, not listing) when it is closed: mktemp -d and umask 077 make 0700
# directories. We do not touch directories above DEV_DIR (e.g. /root is 0700
# on purpose); when one of them blocks the way, the cluster lives in
# $PG_USER's home instead, under a name derived from DEV_DIR, and
# $STATE_DIR/root records where. (`make clean` then leaves that directory
# behind; remove it by hand if you care.)
prepare_cluster_root() {
	mkdir -p "$STATE_DIR"
	CLUSTER_ROOT=$(cluster_root)
	if ((EUID != 0)); then
		chmod 700 "$STATE_DIR"
		return
	fi
	id -u "$PG_USER" >/dev/null 2>&1 ||
		die "running as root, but there is no '$PG_USER' user to run PostgreSQL as (it refuses root)"
	[[ $CLUSTER_ROOT == "$STATE_DIR" ]] || return 0
	chown "$PG_USER": "$STATE_DIR"
	chmod 700 "$STATE_DIR"
	if as_pg test -x "$(dirname "$DEV_DIR")"; then
		if [[ -n $(find "$DEV_DIR" -maxdepth 0 ! -perm -o=x) ]]; then
			log "opening $DEV_DIR for search (o+x) so that $PG_USER can reach its cluster"
			chmod o+x "$DEV_DIR"
		fi
		if as_pg test -w "$STATE_DIR"; then return 0; fi
	fi

	local home
	home=$(getent passwd "$PG_USER" | cut -d: -f6)
	CLUSTER_ROOT=$home/dcbkit-dev/$(printf '%s' "$DEV_DIR" | cksum | cut -d' ' -f1)
	log "$PG_USER cannot reach $STATE_DIR (a parent directory is closed); the cluster lives in $CLUSTER_ROOT"
	as_pg mkdir -p "$CLUSTER_ROOT"
	chmod 700 "$CLUSTER_ROOT"
	echo "$CLUSTER_ROOT" >"$STATE_DIR/root"
}

# port_busy PORT is true when something listens on PORT on this machine.
port_busy() {
	if command -v ss >/dev/null 2>&1; then
		[[ -n $(ss -Htln "sport = :$1") ]]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# choose_port prints the remembered port while it is free, else the first
# free one from FIRST_PORT up.
choose_port() {
	local port=""
	if [[ -s $STATE_DIR/port ]]; then port=$(<"$STATE_DIR/port"); fi
	if [[ $port =~ ^[0-9]+$ ]] && ! port_busy "$port"; then
		echo "$port"
		return
	fi
	for ((port = FIRST_PORT; port < FIRST_PORT + PORT_TRIES; port++)); do
		if ! port_busy "$port"; then
			echo "$port"
			return
		fi
	done
	die "no free port in $FIRST_PORT..$((FIRST_PORT + PORT_TRIES - 1))"
}

cluster_running() { as_pg "$SERVER_BIN/pg_ctl" -D "$CLUSTER_ROOT/data" status >/dev/null 2>&1; }

# running_port prints the port of the running cluster, from postmaster.pid.
running_port() { sed -n 4p "$CLUSTER_ROOT/data/postmaster.pid"; }

init_cluster() {
	log "creating a private cluster in $CLUSTER_ROOT/data (PostgreSQL $(pg_major "$SERVER_BIN"))"
	# The log must belong to the server user, which appends to it later.
	as_pg touch "$CLUSTER_ROOT/log"
	if ! as_pg "$SERVER_BIN/initdb" -D "$CLUSTER_ROOT/data" -U postgres -A trust \
		-E UTF8 --locale=C --no-instructions >>"$CLUSTER_ROOT/log" 2>&1; then
		tail -n 20 "$CLUSTER_ROOT/log" >&2
		die "initdb failed; log: $CLUSTER_ROOT/log"
	fi
	# Our settings live in their own file, rewritten at each start.
	printf "\ninclude_if_exists = 'dcbkit.conf'\n" >>"$CLUSTER_ROOT/data/postgresql.conf"
}

# write_cluster_conf PORT writes the settings of the private cluster. Tuned
# for a dev/test box: loopback only, trust (set by initdb), enough connections
# for parallel test packages; fsync stays on so a crash cannot corrupt it.
write_cluster_conf() {
	local port=$1 conf=$CLUSTER_ROOT/data/dcbkit.conf sockets=$CLUSTER_ROOT quote="'"
	# A unix socket path must fit in 107 bytes; a deep DEV_DIR gets TCP only.
	if ((${#sockets} + ${#port} + 11 > 107)); then sockets=""; fi
	sockets=${sockets//$quote/$quote$quote} # SQL-style quoting for the conf file
	cat >"$conf" <<-EOF
		# Written by init_dev.sh at each start of this cluster; edit init_dev.sh instead.
		listen_addresses = '127.0.0.1'
		port = $port
		unix_socket_directories = '$sockets'
		max_connections = 200
		fsync = on
	EOF
	if ((EUID == 0)); then chown "$PG_USER": "$conf"; fi
}

start_cluster() {
	local port=$1
	write_cluster_conf "$port"
	log "starting the private cluster on 127.0.0.1:$port"
	if ! as_pg "$SERVER_BIN/pg_ctl" -D "$CLUSTER_ROOT/data" -l "$CLUSTER_ROOT/log" \
		-w -t "$READY_TIMEOUT" start >/dev/null; then
		tail -n 20 "$CLUSTER_ROOT/log" >&2
		die "the private cluster did not start; log: $CLUSTER_ROOT/log"
	fi
}

# wait_ready PORT polls until the server answers, or dies at the deadline.
wait_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT))
	until "$PG_ISREADY" -q -h 127.0.0.1 -p "$1" -t 1; do
		if ((SECONDS >= deadline)); then
			tail -n 20 "$CLUSTER_ROOT/log" >&2
			die "the private cluster does not answer on port $1; log: $CLUSTER_ROOT/log"
		fi
		sleep 0.2
	done
}

use_private_cluster() {
	local port
	prepare_cluster_root
	# The programs of the cluster's own version talk to it.
	PSQL=$SERVER_BIN/psql
	PG_ISREADY=$SERVER_BIN/pg_isready
	[[ -x $PSQL ]] || PSQL=$(client_tool psql)
	[[ -x $PG_ISREADY ]] || PG_ISREADY=$(client_tool pg_isready)

	if [[ ! -s $CLUSTER_ROOT/data/PG_VERSION ]]; then init_cluster; fi
	if cluster_running; then
		port=$(running_port)
		log "the private cluster is running on 127.0.0.1:$port"
	else
		port=$(choose_port)
		start_cluster "$port"
	fi
	wait_ready "$port"
	if [[ ! -s $STATE_DIR/port || $(<"$STATE_DIR/port") != "$port" ]]; then
		echo "$port" >"$STATE_DIR/port"
	fi
	ensure_database "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	finish "postgres://postgres@127.0.0.1:$port/$DB_NAME?sslmode=disable"
}

stop_private_cluster() {
	CLUSTER_ROOT=$(cluster_root)
	if [[ ! -s $CLUSTER_ROOT/data/PG_VERSION ]]; then
		log "no private cluster in $CLUSTER_ROOT; nothing to stop"
		return
	fi
	find_server_bin || die "no PostgreSQL programs found to stop $CLUSTER_ROOT/data"
	if ! cluster_running; then
		log "the private cluster in $CLUSTER_ROOT/data is not running"
		return
	fi
	as_pg "$SERVER_BIN/pg_ctl" -D "$CLUSTER_ROOT/data" -m fast -w -t "$READY_TIMEOUT" stop >/dev/null
	log "stopped the private cluster in $CLUSTER_ROOT/data"
}

# ---------------------------------------------------------------------------
# c. Docker compose

compose() { docker compose -f "$REPO_DIR/docker-compose.yml" "$@"; }

# docker_works is true when the compose plugin exists and an engine answers;
# a client without a daemon is common and must not count.
docker_works() {
	if ! command -v docker >/dev/null 2>&1 || ! timeout 20 docker compose version >/dev/null 2>&1; then
		log "docker compose is not installed"
		return 1
	fi
	if ! timeout 20 docker info >/dev/null 2>&1; then
		log "docker compose is installed, but no Docker engine answers"
		return 1
	fi
}

use_docker() {
	local deadline=$((SECONDS + READY_TIMEOUT)) exists
	log "starting postgres with docker compose"
	compose up -d postgres >&2
	# Over TCP: while the image initialises, a temporary server answers on
	# the unix socket only, and is then restarted.
	until compose exec -T postgres pg_isready -q -U postgres -h 127.0.0.1; do
		((SECONDS < deadline)) || die "the postgres container does not answer; see: docker compose logs postgres"
		sleep 1
	done
	# The image creates POSTGRES_DB (dcbkit) itself; another DCBKIT_DB needs creating.
	exists=$(compose exec -T postgres psql -X -A -t -U postgres -c \
		"SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")
	if [[ $exists != 1 ]]; then
		compose exec -T postgres psql -X -q -U postgres -c "CREATE DATABASE $DB_NAME" >&2
		log "created database $DB_NAME"
	fi
	finish "postgres://postgres@127.0.0.1:5432/$DB_NAME?sslmode=disable"
}

# ---------------------------------------------------------------------------
# d. Install, e. explain

can_install() { ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; }

install_postgresql() {
	log "installing PostgreSQL with apt-get"
	apt-get update >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
}

explain_install() {
	cat >&2 <<-'EOF'
		init_dev: no PostgreSQL server answers and none can be started here.
		Install PostgreSQL, then run ./init_dev.sh again:
		  Debian/Ubuntu:  sudo apt-get install postgresql
		  macOS:          brew install postgresql@15
		or point DATABASE_URL at a server you have (postgres://user@host:port/db).
	EOF
}

# ---------------------------------------------------------------------------

main() {
	case ${1:-} in
	"") ;;
	stop)
		if [[ -d $DEV_DIR ]]; then
			DEV_DIR=$(cd "$DEV_DIR" && pwd -P)
			STATE_DIR=$DEV_DIR/pg
		fi
		stop_private_cluster
		return
		;;
	*) die "usage: $0 [stop]" ;;
	esac

	[[ $DB_NAME =~ ^[a-z_][a-z0-9_]*$ ]] || die "DCBKIT_DB must be a plain lower-case identifier, got: $DB_NAME"
	mkdir -p "$DEV_DIR"
	DEV_DIR=$(cd "$DEV_DIR" && pwd -P)
	STATE_DIR=$DEV_DIR/pg
	PSQL=$(client_tool psql)
	PG_ISREADY=$(client_tool pg_isready)

	# Each check decides only whether its way applies; the work runs outside
	# any condition so that `set -e` stays in force there.
	if given_server_answers; then
		use_given_server
		return
	fi
	if find_server_bin; then
		use_private_cluster
		return
	fi
	log "no PostgreSQL server programs (initdb, pg_ctl, postgres) are installed"
	if docker_works; then
		use_docker
		return
	fi
	if can_install; then
		install_postgresql
		find_server_bin || die "apt-get installed postgresql, but its programs were not found"
		use_private_cluster
		return
	fi
	explain_install
	exit 1
}

main "$@"
