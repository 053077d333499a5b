#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# A throw-away PostgreSQL 15 cluster for the store tests.
#
#   eval "$(tests/pg.sh)"      # start (or reuse) it; exports NB_TEST_PG_DSN
#   tests/pg.sh env            # print the export line of the running cluster
#   tests/pg.sh stop           # stop it and delete its files
#   tests/pg.sh stop-server [fast|immediate]
#                              # stop the server, keep its files and port
#   tests/pg.sh start-server   # start that stopped server again (same port)
#
# The cluster lives in a mktemp folder, runs as a non-root user (the server
# refuses root: as root the script uses "postgres", or creates "nbtest"),
# listens on 127.0.0.1 only (a free port) plus a private socket folder,
# keeps fsync on and trusts local connections.  stdout carries only the
# export line, so eval is safe; progress goes to stderr.  Running start
# twice reuses the running cluster.  NB_PG_STATE names the state file
# (default /tmp/nudgebridge-pg-<uid>.env); NB_PG_BIN the server binaries.
set -euo pipefail

bin=${NB_PG_BIN:-/usr/lib/postgresql/15/bin}
state=${NB_PG_STATE:-${TMPDIR:-/tmp}/nudgebridge-pg-$(id -u).env}
dbname=nudgebridge_test
dbuser=nudgebridge

say() { printf 'pg.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

if [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ]; then
	die "no PostgreSQL 15 server in $bin (apt-get install postgresql-15)"
fi

if [ "$(id -u)" -eq 0 ]; then
	if getent passwd postgres >/dev/null; then
		pguser=postgres
	else
		pguser=nbtest
		getent passwd "$pguser" >/dev/null ||
			useradd --system --no-create-home --shell /usr/sbin/nologin \
			    "$pguser" || die "cannot create user $pguser"
	fi
else
	pguser=$(id -un)
fi

# Runs a command as the cluster's owner, from a folder it may enter.
as_user() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u "$pguser" -- "$@")
	else
		(cd / && "$@")
	fi
}

dsn_of() { printf 'postgresql://%s@127.0.0.1:%s/%s' "$dbuser" "$1" "$dbname"; }

load_state() {
	dir='' port=
	[ -f "$state" ] || return 1
	# shellcheck disable=SC1090
	. "$state"
	[ -n "$dir" ] && [ -n "$port" ] && [ -d "$dir/data" ]
}

running() { as_user "$bin/pg_ctl" status -D "$dir/data" >/dev/null 2>&1; }

free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		# Nothing answers there: free (pg_ctl start fails otherwise).
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

start_server() {
	as_user "$bin/pg_ctl" start -w -t 30 -D "$dir/data" -l "$dir/log" \
	    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c fsync=on -c synchronous_commit=on -c max_connections=200" \
	    >/dev/null
}

cmd_start() {
	local tries
	if load_state; then
		if running || start_server; then
			echo "export NB_TEST_PG_DSN=$(dsn_of "$port")"
			return 0
		fi
		say "stale cluster in $dir: recreating"
		cmd_stop
	fi
	dir=$(mktemp -d "${TMPDIR:-/tmp}/nb-pg.XXXXXX")
	mkdir "$dir/sock"
	chown -R "$pguser" "$dir"
	chmod 700 "$dir"
	say "initdb in $dir as $pguser"
	as_user "$bin/initdb" -D "$dir/data" -U "$dbuser" -A trust -E UTF8 \
	    --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
		die "initdb failed: see $dir/initdb.log"
	for tries in 1 2 3 4 5; do
		port=$(free_port) || die "no free port"
		if start_server; then
			break
		fi
		[ "$tries" -lt 5 ] || die "server did not start: see $dir/log"
	done
	printf 'dir=%s\nport=%s\n' "$dir" "$port" >"$state"
	as_user "$bin/createdb" -h "$dir/sock" -p "$port" -U "$dbuser" \
	    "$dbname" || die "cannot create database $dbname"
	say "PostgreSQL on 127.0.0.1:$port (database $dbname)"
	echo "export NB_TEST_PG_DSN=$(dsn_of "$port")"
}

cmd_stop() {
	if ! load_state; then
		[ -f "$state" ] && rm -f "$state"
		return 0
	fi
	if running; then
		as_user "$bin/pg_ctl" stop -w -m fast -D "$dir/data" >/dev/null ||
			say "pg_ctl stop failed"
	fi
	case "$dir" in
	*/nb-pg.*) rm -rf "$dir" ;;
	esac
	rm -f "$state"
	say "stopped"
}

cmd_env() {
	if ! load_state || ! running; then
		die "no cluster running (run tests/pg.sh)"
	fi
	echo "export NB_TEST_PG_DSN=$(dsn_of "$port")"
}

# An outage for the tests: the data folder, the port and the state file stay,
# so start-server brings back the same server with the same rows.
cmd_stop_server() {
	local mode=${1:-fast}
	case "$mode" in
	fast | immediate | smart) ;;
	*) die "stop-server: mode is fast, immediate or smart" ;;
	esac
	load_state || die "no cluster (run tests/pg.sh)"
	if running; then
		as_user "$bin/pg_ctl" stop -w -t 30 -m "$mode" -D "$dir/data" \
		    >/dev/null || die "pg_ctl stop failed"
	fi
	say "server on port $port stopped ($mode); files kept in $dir"
}

cmd_start_server() {
	load_state || die "no cluster (run tests/pg.sh)"
	running || start_server || die "server did not start: see $dir/log"
	echo "export NB_TEST_PG_DSN=$(dsn_of "$port")"
}

case "${1:-start}" in
start) cmd_start ;;
stop) cmd_stop ;;
stop-server) cmd_stop_server "${2:-fast}" ;;
start-server) cmd_start_server ;;
env | status) cmd_env ;;
*) die "usage: $0 [start|stop|env|stop-server [fast|immediate]|start-server]" ;;
esac
