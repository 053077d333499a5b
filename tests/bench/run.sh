#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# nudgebridge benchmarks: every figure of docs/benchmarks.md in one run, with
# the references the targets are ratios of measured in the same run.
#
#   tests/bench/run.sh [--quick] [--only LETTERS] [--backlog N] [--retained N]
#                      [--duration S] [--segment-extra JSON] [--no-build]
#                      [--keep]
#
# builds a Release nudgebridge (build-bench/) and the tools (build-bench-tools/:
# nbload, nbsink, nbbare, nbslow, fsprobe, store_fill), installs the Node.js
# peer of tests/bench/peer-node (npm, once, cached in the tools folder),
# starts a throw-away PostgreSQL (tests/pg.sh, default settings) when a
# PostgreSQL scenario is wanted, runs the scenarios with every process on
# 127.0.0.1 and prints one Markdown table on stdout (scenario | nudgebridge
# | reference | ratio | target | met).  Scenarios (--only picks some; e and
# f come with the others):
#
#   a  single-event ingest on SQLite, nudgebridge / Node peer / bare evhttp
#   b  100-event arrays on SQLite (nudgebridge, peer)
#   c  open loop at 5,000 req/s on SQLite, and the disk's own fdatasync
#   d  drain of a --backlog on SQLite (f: start-up with it)
#   q  single-event ingest on PostgreSQL
#   r  drain of a --backlog on PostgreSQL
#   t  two instances on one PostgreSQL: ingest, and drain of a --backlog
#   p  signed webhooks, /metrics and /v1/stats latency on an empty store and
#      with --retained delivered events kept
#   s  a signed sender while 1,000 idle and 100 slow connections hold each
#      listener (main and admin)
#
# --quick: 5 s runs and a 100,000-event backlog (the retained store stays at
# 1,000,000: filling it takes seconds).  --segment-extra adds JSON members to
# every bridge's "segment" object (members, not an object: '"gzip": false');
# the drain rows say whether the sink saw gzip and how many bytes per event
# went over the wire.  Logs, configurations and raw JSON stay in the scratch folder it names
# (removed unless --keep).
#
# Environment: NB_BENCH_PORT_BASE (default 18400; eight ports from there),
# NB_BENCH_PEER (peer sources, default tests/bench/peer-node), NB_BENCH_BUILD
# / NB_BENCH_TOOLS (build folders), NB_BENCH_DRAIN_RPS (segment.rate_limit_rps
# during drains, default 1000), NB_BENCH_SENDER_RATE (the signed sender of p
# and s, req/s, default 100), NB_BENCH_POLL_S (poll interval of p, default 1).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

quick=0
build=1
keep=0
backlog=
retained=1000000
duration=
only=abcdqrtps
segment_extra=
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--no-build) build=0 ;;
	--keep) keep=1 ;;
	--backlog) backlog=$2; shift ;;
	--retained) retained=$2; shift ;;
	--duration) duration=$2; shift ;;
	--only) only=$2; shift ;;
	--segment-extra) segment_extra=$2; shift ;;
	-h | --help)
		sed -n '4,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p'
		exit 0
		;;
	*) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
if [ "$quick" = 1 ]; then
	: "${backlog:=100000}" "${duration:=5}"
	warmup=1
else
	: "${backlog:=1000000}" "${duration:=10}"
	warmup=2
fi
case "$backlog$retained" in *[!0-9]*) echo "run.sh: --backlog N, --retained N" >&2; exit 2 ;; esac
if [ $((backlog % 100)) -ne 0 ] || [ "$backlog" -lt 100 ] || [ "$retained" -lt 1 ]; then
	echo "run.sh: --backlog must be a multiple of 100, --retained at least 1" >&2
	exit 2
fi
case "$only" in *[!abcdefqrtps]* | '') echo "run.sh: --only takes letters of abcdqrtps" >&2; exit 2 ;; esac

nb_build=${NB_BENCH_BUILD:-$root/build-bench}
tools=${NB_BENCH_TOOLS:-$root/build-bench-tools}
peer_src=${NB_BENCH_PEER:-$here/peer-node}
base=${NB_BENCH_PORT_BASE:-18400}
nb_port=$base
nb_sink_port=$((base + 1))
peer_port=$((base + 2))
peer_sink_port=$((base + 3))
reject_port=$((base + 4))
bare_port=$((base + 5))
nb2_port=$((base + 6))
admin_port=$((base + 7))
# The drain measures the bridge, not its outbound throttle: the default of 50
# batch requests/s per write key caps a drain near 50 x ~600 events.
drain_rps=${NB_BENCH_DRAIN_RPS:-1000}
sender_rate=${NB_BENCH_SENDER_RATE:-100}
poll_s=${NB_BENCH_POLL_S:-1}
# The bridge's default http_threads (online CPUs less one, 1..8); the bare
# evhttp server gets as many event loops.
threads=$(($(nproc) - 1))
[ "$threads" -ge 1 ] || threads=1
[ "$threads" -le 8 ] || threads=8
write_key=wk_bench
source=acme

say() { printf '%s\n' "$*" >&2; }
die() { say "run.sh: $*"; exit 1; }
wants() { case "$only" in *"$1"*) return 0 ;; *) return 1 ;; esac; }
wants_pg() { wants q || wants r || wants t; }
wants_peer() { wants a || wants b || wants c; }

for cmd in cmake jq curl python3; do
	command -v "$cmd" >/dev/null || die "$cmd is needed"
done
if wants_peer; then
	for cmd in node npm; do
		command -v "$cmd" >/dev/null || die "$cmd is needed (the Node peer)"
	done
fi
if wants_pg; then
	command -v psql >/dev/null || die "psql is needed (Debian package postgresql)"
fi
for p in $(seq "$base" $((base + 7))); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		die "port $p is in use (set NB_BENCH_PORT_BASE)"
	fi
done

# ---- build ------------------------------------------------------------------

if [ "$build" = 1 ]; then
	say "== building nudgebridge (Release) in $nb_build"
	cmake -S "$root" -B "$nb_build" -DCMAKE_BUILD_TYPE=Release \
		-DNB_TESTS=OFF -DNB_SANITIZE=OFF -DNB_LIB_ONLY= >/dev/null
	cmake --build "$nb_build" -j2 >/dev/null
	say "== building the tools in $tools"
	cmake -S "$here" -B "$tools" -DCMAKE_BUILD_TYPE=Release \
		-DNB_CORE_BUILD="$nb_build" >/dev/null
	cmake --build "$tools" -j2 >/dev/null
fi
nb=$nb_build/nudgebridge
nbload=$tools/nbload
nbsink=$tools/nbsink
nbbare=$tools/nbbare
nbslow=$tools/nbslow
fsprobe=$tools/fsprobe
store_fill=$tools/store_fill
nbpoll=$here/nbpoll.py
for f in "$nb" "$nbload" "$nbsink" "$nbbare" "$nbslow" "$fsprobe" "$store_fill"; do
	[ -x "$f" ] || die "$f is missing (run without --no-build)"
done

scratch=$(mktemp -d /tmp/nbbench.XXXXXX)
pids=()
pg_state=
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [ -n "$pg_state" ]; then
		NB_PG_STATE=$pg_state bash "$root/tests/pg.sh" stop 2>/dev/null || true
	fi
	if [ "$keep" = 1 ]; then
		say "== scratch kept in $scratch"
	else
		rm -rf "$scratch"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The peer's node_modules are installed once per package-lock.json and kept
# in the tools folder, where the peer runs (its .js files copied each time).
if wants_peer; then
	[ -f "$peer_src/package-lock.json" ] || die "no peer in $peer_src"
	peer_cache=$tools/peer-node
	lock_sum=$(cat "$peer_src/package.json" "$peer_src/package-lock.json" | cksum | cut -d' ' -f1)
	if [ "$(cat "$peer_cache/.lock-sum" 2>/dev/null)" != "$lock_sum" ]; then
		say "== installing the peer in $peer_cache (npm ci)"
		rm -rf "$peer_cache"
		mkdir -p "$peer_cache"
		cp -r "$peer_src"/. "$peer_cache"/
		chmod -R u+w "$peer_cache"
		(cd "$peer_cache" && npm ci --no-audit --no-fund --silent >/dev/null) ||
			die "npm ci failed in $peer_cache"
		echo "$lock_sum" >"$peer_cache/.lock-sum"
	fi
	cp "$peer_src"/*.js "$peer_cache"/
fi

secret=whsec_$(head -c 32 /dev/urandom | base64 -w0)
admin_token=tok_$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d =)
export NB_BENCH_ADMIN_TOKEN=$admin_token

# ---- process helpers ----------------------------------------------------------

# start_bg LOG CMD...: starts CMD in the background, its pid in $bg.
start_bg() {
	local log=$1
	shift
	"$@" >"$log" 2>&1 &
	bg=$!
	pids+=("$bg")
}

# stop PID: SIGTERM, then SIGKILL after 30 s.
stop() {
	local pid=$1
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# hwm_mb PID / rss_mb PID: peak and current resident set, MB.
hwm_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
nfds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

wait_ready() { "$nbload" --port "$1" --wait-ready --timeout 120 >/dev/null; }
# wait_ready_pid PORT PID: as wait_ready, but gives up as soon as PID has
# exited (a configuration it refused), instead of after two minutes.
wait_ready_pid() {
	for _ in $(seq 120); do
		"$nbload" --port "$1" --wait-ready --timeout 1 >/dev/null 2>&1 &&
			return 0
		kill -0 "$2" 2>/dev/null || return 1
	done
	return 1
}
wait_port() {
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

sink_stat() {
	curl -sf "http://127.0.0.1:$1/stats" | jq -r ".$2" 2>/dev/null || echo 0
}

# wait_delivered PORT N STALL_S: until the sink on PORT saw N messageIds,
# or nothing new arrived for STALL_S seconds; prints what it saw.
wait_delivered() {
	local port=$1 want=$2 stall=$(($3 * 10)) got=0 last=-1 still=0
	while :; do
		got=$(sink_stat "$port" unique)
		[ "$got" -ge "$want" ] && break
		if [ "$got" -eq "$last" ]; then
			still=$((still + 1))
			[ "$still" -ge "$stall" ] && break
		else
			still=0
			last=$got
		fi
		sleep 0.1
	done
	echo "$got"
}

# nb_config DIR PORT SINK_PORT STORE_JSON [SEGMENT_EXTRA] [ADMIN]: writes
# DIR/config.json; SEGMENT_EXTRA is more JSON members of "segment", ADMIN
# non-empty opens the admin listener on $admin_port.
nb_config() {
	local seg="\"endpoint\": \"http://127.0.0.1:$3\"" admin=
	[ -z "${5:-}" ] || seg="$seg, $5"
	[ -z "$segment_extra" ] || seg="$seg, $segment_extra"
	[ -z "${6:-}" ] ||
		admin="\"admin\": { \"listen\": \"127.0.0.1:$admin_port\", \"token\": \"$admin_token\" },"
	mkdir -p "$1"
	cat >"$1/config.json" <<EOF
{
  "listen": "127.0.0.1:$2",
  $admin
  "log": { "level": "warn" },
  "store": $4,
  "limits": { "timestamp_tolerance_s": 300 },
  "segment": { $seg },
  "sources": [
    { "name": "$source", "signing_secrets": ["$secret"], "write_key": "$write_key" }
  ]
}
EOF
}

sqlite_store='{ "driver": "sqlite", "path": "nb.db" }'
pg_store() { echo "{ \"driver\": \"postgres\", \"dsn\": \"$pg_base/$1\" }"; }

# start_nb DIR PORT LOG: nudgebridge on DIR/config.json; sets $nb_pid.
start_nb() {
	start_bg "$3" "$nb" serve --config "$1/config.json"
	nb_pid=$bg
	wait_ready_pid "$2" "$nb_pid" ||
		die "nudgebridge did not get ready ($1): $(tail -n 3 "$3" 2>/dev/null)"
}

# start_target nb|peer|bare DIR [STORE_JSON]: the system under test and its
# sink; sets $target_pid and $sink_pid (empty for bare).
start_target() {
	local who=$1 dir=$2
	mkdir -p "$dir"
	sink_pid=
	case "$who" in
	nb)
		start_bg "$dir/sink.log" "$nbsink" --port "$nb_sink_port" \
			--write-key "$write_key"
		sink_pid=$bg
		nb_config "$dir" "$nb_port" "$nb_sink_port" "${3:-$sqlite_store}"
		start_nb "$dir" "$nb_port" "$dir/nudgebridge.log"
		target_pid=$nb_pid
		;;
	peer)
		start_bg "$dir/sink.log" "$nbsink" --port "$peer_sink_port" \
			--write-key "$write_key"
		sink_pid=$bg
		(cd "$peer_cache" && PORT=$peer_port \
			SINK=http://127.0.0.1:$peer_sink_port SECRET=$secret \
			WRITE_KEY=$write_key exec node server.js) \
			>"$dir/peer.log" 2>&1 &
		target_pid=$!
		pids+=("$target_pid")
		wait_port "$peer_port" || die "the peer did not start ($dir)"
		;;
	bare)
		start_bg "$dir/bare.log" "$nbbare" --port "$bare_port" \
			--threads "$threads"
		target_pid=$bg
		wait_port "$bare_port" || die "nbbare did not start ($dir)"
		;;
	esac
}

port_of() {
	case "$1" in nb) echo "$nb_port" ;; peer) echo "$peer_port" ;; bare) echo "$bare_port" ;; esac
}
sink_port_of() { if [ "$1" = nb ]; then echo "$nb_sink_port"; else echo "$peer_sink_port"; fi; }

declare -A R

# keep_load KEY JSON: the figures of one nbload run under R[KEY.*].
keep_load() {
	local k=$1 out=$2
	R[$k.rps]=$(echo "$out" | jq .req_per_s)
	R[$k.eps]=$(echo "$out" | jq .events_per_s)
	R[$k.p50]=$(echo "$out" | jq .latency_ms.p50)
	R[$k.p99]=$(echo "$out" | jq .latency_ms.p99)
	R[$k.p999]=$(echo "$out" | jq .latency_ms.p999)
	# Of the requests due in the measured window, the share answered 2xx
	# (requests that never found a free connection count as not answered).
	R[$k.okpct]=$(echo "$out" | jq '(.requests + (.unsent // 0)) as $due |
		if $due > 0 then 100 * ([.status | to_entries[] |
		select(.key | startswith("2")) | .value] | add // 0) / $due
		else "n/a" end')
	R[$k.censored]=$(echo "$out" | jq '.censored // 0')
}

# ingest SCENARIO WHO STORE NBLOAD-ARGS...: one fresh target, one nbload
# run; STORE is sqlite or a PostgreSQL database name (nudgebridge only).
ingest() {
	local sc=$1 who=$2 store=$3 dir out ok delivered js=$sqlite_store
	shift 3
	dir=$scratch/$sc-$who
	[ "$store" = sqlite ] || js=$(pg_store "$store")
	start_target "$who" "$dir" "$js"
	say "== ($sc) $who${store:+ on $store}: nbload $*"
	out=$("$nbload" --port "$(port_of "$who")" --source "$source" \
		--secret "$secret" --warmup "$warmup" --duration "$duration" \
		--label "$sc-$who" "$@")
	echo "$out" >"$dir/nbload.json"
	say "   $(echo "$out" | jq -c '{req_per_s, events_per_s, status, errors, latency_ms}')"
	keep_load "$sc.$who" "$out"
	R[$sc.$who.hwm]=$(hwm_mb "$target_pid")
	if [ -n "$sink_pid" ]; then
		ok=$(echo "$out" | jq .total.events_ok)
		delivered=$(wait_delivered "$(sink_port_of "$who")" "$ok" 10)
		say "   peak RSS ${R[$sc.$who.hwm]} MB; delivered $delivered of $ok accepted events"
		stop "$sink_pid"
	fi
	stop "$target_pid"
}

# ---- PostgreSQL -------------------------------------------------------------

pg_base=
pg_up() {
	local out
	[ -z "$pg_base" ] || return 0
	pg_state=$scratch/pg.env
	say "== starting a throw-away PostgreSQL (tests/pg.sh)"
	out=$(NB_PG_STATE=$pg_state bash "$root/tests/pg.sh") ||
		die "tests/pg.sh could not start PostgreSQL"
	out=${out#export NB_TEST_PG_DSN=}
	pg_base=${out%/*}
	R[pg.version]=$(psql "$pg_base/postgres" -qAtc 'SHOW server_version' | cut -d' ' -f1)
	say "   PostgreSQL ${R[pg.version]} at ${pg_base#*@}" \
		"(fsync $(psql "$pg_base/postgres" -qAtc 'SHOW fsync')," \
		"synchronous_commit $(psql "$pg_base/postgres" -qAtc 'SHOW synchronous_commit'))"
}
pg_down() {
	[ -n "$pg_state" ] || return 0
	NB_PG_STATE=$pg_state bash "$root/tests/pg.sh" stop 2>/dev/null || true
	pg_state=
	pg_base=
}
# pg_createdb NAME [TEMPLATE]
pg_createdb() {
	psql "$pg_base/postgres" -qAtc "CREATE DATABASE $1${2:+ TEMPLATE $2}" >/dev/null ||
		die "cannot create database $1"
}

# ---- backlogs and drains ------------------------------------------------------

# backlog_load DIR STORE_JSON KEY: loads $backlog events (100-event arrays,
# 16 connections) while the sink refuses the write key (401 pauses delivery
# without spending attempts), then stops the bridge.  Sets R[KEY.loaded]
# and R[KEY.load_hwm].
backlog_load() {
	local dir=$1 js=$2 k=$3 out accepted reject_pid
	mkdir -p "$dir"
	say "== ($k) loading a backlog of $backlog events (sink answers 401)"
	start_bg "$dir/reject.log" "$nbsink" --port "$reject_port" --write-key not-"$write_key"
	reject_pid=$bg
	nb_config "$dir" "$nb_port" "$reject_port" "$js"
	start_nb "$dir" "$nb_port" "$dir/nudgebridge-load.log"
	out=$("$nbload" --port "$nb_port" --source "$source" --secret "$secret" \
		--connections 16 --events-per-request 100 \
		--max-requests $((backlog / 100)) --warmup 0 --duration 1800 \
		--grace 60 --label "$k-load")
	echo "$out" >"$dir/nbload-load.json"
	accepted=$(echo "$out" | jq .total.accepted)
	R[$k.loaded]=$accepted
	R[$k.load_hwm]=$(hwm_mb "$nb_pid")
	say "   accepted $accepted events in $(echo "$out" | jq .total.elapsed_s) s;" \
		"peak RSS ${R[$k.load_hwm]} MB"
	[ "$accepted" -eq "$backlog" ] || say "   !! accepted $accepted, wanted $backlog"
	stop "$nb_pid"
	stop "$reject_pid"
}

# drain DIR STORE_JSON KEY WANT INSTANCES: restarts INSTANCES bridges on the
# loaded store against an accepting sink and times exec .. the sink has seen
# WANT distinct messageIds.  Sets R[KEY.eps], R[KEY.ready_ms] (start-up of
# the first), R[KEY.ready_rss], R[KEY.drain_hwm], R[KEY.bpe] (bytes on the
# wire per event), R[KEY.rawpe] (JSON bytes per event), R[KEY.gzip].
drain() {
	local dir=$1 js=$2 k=$3 want=$4 n=$5 t0 t_ready t_done got s sink_pid
	local ipids=() i
	say "== ($k) draining $want events with $n instance(s); timing start-up and drain"
	start_bg "$dir/sink.log" "$nbsink" --port "$nb_sink_port" --write-key "$write_key"
	sink_pid=$bg
	nb_config "$dir" "$nb_port" "$nb_sink_port" "$js" "\"rate_limit_rps\": $drain_rps"
	nb_config "$dir/2" "$nb2_port" "$nb_sink_port" "$js" "\"rate_limit_rps\": $drain_rps"
	t0=$(date +%s%N)
	for i in $(seq "$n"); do
		if [ "$i" = 1 ]; then
			start_bg "$dir/nudgebridge-drain.log" "$nb" serve --config "$dir/config.json"
		else
			start_bg "$dir/nudgebridge-drain-$i.log" "$nb" serve --config "$dir/2/config.json"
		fi
		ipids+=("$bg")
	done
	wait_ready "$nb_port" || die "nudgebridge did not get ready with the backlog ($dir)"
	t_ready=$(date +%s%N)
	R[$k.ready_rss]=$(rss_mb "${ipids[0]}")
	[ "$n" -lt 2 ] || wait_ready "$nb2_port" || die "the second instance did not get ready"
	got=$(wait_delivered "$nb_sink_port" "$want" 60)
	t_done=$(date +%s%N)
	R[$k.drain_hwm]=0
	for i in "${ipids[@]}"; do
		R[$k.drain_hwm]=$(max "${R[$k.drain_hwm]}" "$(hwm_mb "$i")")
	done
	s=$(curl -sf "http://127.0.0.1:$nb_sink_port/stats" || echo '{}')
	say "   sink: $s"
	for i in "${ipids[@]}"; do stop "$i"; done
	stop "$sink_pid"
	R[$k.ready_ms]=$(awk -v a="$t0" -v b="$t_ready" 'BEGIN { printf "%.0f", (b - a) / 1e6 }')
	R[$k.drain_s]=$(awk -v a="$t0" -v b="$t_done" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
	if [ "$got" -ge "$want" ] && [ "$want" -gt 0 ]; then
		R[$k.eps]=$(awk -v n="$want" -v s="${R[$k.drain_s]}" 'BEGIN { printf "%.0f", n / s }')
	else
		R[$k.eps]=n/a
		say "   !! the sink saw only $got of $want events"
	fi
	R[$k.bpe]=$(echo "$s" | jq 'if (.messages // 0) > 0 then .bytes / .messages else "n/a" end')
	R[$k.rawpe]=$(echo "$s" | jq 'if (.messages // 0) > 0 then .raw_bytes / .messages else "n/a" end')
	if [ "$(echo "$s" | jq '.gzip // 0')" -gt 0 ]; then R[$k.gzip]=on; else R[$k.gzip]=off; fi
	say "   ready after ${R[$k.ready_ms]} ms (RSS ${R[$k.ready_rss]} MB); $got events" \
		"delivered in ${R[$k.drain_s]} s from exec; peak RSS ${R[$k.drain_hwm]} MB"
}

max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 > b + 0) ? a : b }'; }

# ---- operator load and hostile connections (p, s) -------------------------------

# sender KEY DIR PID [POLLS...]: the signed sender at $sender_rate req/s
# (open loop, 64 connections: Nudgespot does not wait for one answer before
# it sends the next webhook) for the run's duration while nbpoll runs the
# given pollers and samples PID.  Sets R[KEY.*] from both.
sender() {
	local k=$1 dir=$2 pid=$3 out poll polls=() pf
	shift 3
	for poll in "$@"; do polls+=(--poll "$poll"); done
	pf=$dir/nbpoll-$k.json
	python3 "$nbpoll" --duration $((warmup + duration + 1)) --pid "$pid" \
		"${polls[@]}" >"$pf" &
	local poll_pid=$!
	pids+=("$poll_pid")
	out=$("$nbload" --port "$nb_port" --source "$source" --secret "$secret" \
		--connections 64 --rate "$sender_rate" --warmup "$warmup" \
		--duration "$duration" --grace 30 --label "$k")
	echo "$out" >"$dir/nbload-$k.json"
	wait "$poll_pid" || true
	keep_load "$k" "$out"
	R[$k.rss]=$(jq .proc.rss_max_mb "$pf")
	R[$k.fds]=$(jq .proc.fds_max "$pf")
	R[$k.m50]=$(jq '.polls.metrics.p50_ms // "n/a"' "$pf")
	R[$k.m99]=$(jq '.polls.metrics.p99_ms // "n/a"' "$pf")
	R[$k.s50]=$(jq '.polls.stats.p50_ms // "n/a"' "$pf")
	R[$k.s99]=$(jq '.polls.stats.p99_ms // "n/a"' "$pf")
	say "   webhooks: $(echo "$out" | jq -c '{req_per_s, status, errors, unanswered, unsent, censored, latency_ms}')"
	say "   pollers and process: $(jq -c '{polls: (.polls | map_values({count, errors, p50_ms, p99_ms, max_ms})), proc}' "$pf")"
}

scenario_p() {
	local dir=$scratch/p-nb polls
	polls=("metrics,$nb_port,/metrics,4,$poll_s" "stats,$admin_port,/v1/stats,1,$poll_s,bearer")
	mkdir -p "$dir"
	start_bg "$dir/sink.log" "$nbsink" --port "$nb_sink_port" --write-key "$write_key"
	local sink_pid=$bg
	nb_config "$dir" "$nb_port" "$nb_sink_port" "$sqlite_store" "" admin
	say "== (p) empty store: signed webhooks at $sender_rate req/s, 4 /metrics and 1 /v1/stats pollers every $poll_s s"
	start_nb "$dir" "$nb_port" "$dir/nudgebridge-empty.log"
	sender p.e "$dir" "$nb_pid" "${polls[@]}"
	stop "$nb_pid"
	say "== (p) filling the store with $retained delivered events (store_fill)"
	"$store_fill" --sqlite "$dir/nb.db" --events "$retained" 2>"$dir/fill.log" >"$dir/fill.json" ||
		die "store_fill failed (see $dir/fill.log)"
	say "   $(cat "$dir/fill.json")"
	say "== (p) $retained delivered events retained: the same load"
	start_nb "$dir" "$nb_port" "$dir/nudgebridge-full.log"
	sender p.f "$dir" "$nb_pid" "${polls[@]}"
	stop "$nb_pid"
	stop "$sink_pid"
}

scenario_s() {
	local dir=$scratch/s-nb sink_pid slow_main slow_admin n
	mkdir -p "$dir"
	start_bg "$dir/sink.log" "$nbsink" --port "$nb_sink_port" --write-key "$write_key"
	sink_pid=$bg
	nb_config "$dir" "$nb_port" "$nb_sink_port" "$sqlite_store" "" admin
	start_nb "$dir" "$nb_port" "$dir/nudgebridge.log"
	say "== (s) the signed sender alone ($sender_rate req/s)"
	sender s.b "$dir" "$nb_pid"
	say "== (s) the same with 1,000 idle, 90 slow and 10 huge-body connections on each listener"
	start_bg "$dir/slow-main.json" "$nbslow" --port "$nb_port" --idle 1000 \
		--slow 90 --huge 10 --path /v1/webhooks/nosuchsource \
		--huge-path /v1/webhooks/nosuchsource
	slow_main=$bg
	start_bg "$dir/slow-admin.json" "$nbslow" --port "$admin_port" --idle 1000 \
		--slow 90 --huge 10 --path /v1/stats --huge-path /v1/dlq/replay
	slow_admin=$bg
	# Until the connections are open (or 10 s): the bridge holds a
	# descriptor for each one it accepted.
	for _ in $(seq 100); do
		n=$(nfds "$nb_pid")
		[ "$n" -ge 2200 ] && break
		sleep 0.1
	done
	say "   the bridge holds $(nfds "$nb_pid") descriptors"
	sender s.l "$dir" "$nb_pid"
	stop "$slow_main"
	stop "$slow_admin"
	R[s.closed]="main $(jq '.idle.closed_by_server + .slow.closed_by_server' "$dir/slow-main.json"), admin $(jq '.idle.closed_by_server + .slow.closed_by_server' "$dir/slow-admin.json")"
	R[s.huge]="main $(jq -c '.huge.answers' "$dir/slow-main.json"), admin $(jq -c '.huge.answers' "$dir/slow-admin.json")"
	say "   nbslow main: $(cat "$dir/slow-main.json")"
	say "   nbslow admin: $(cat "$dir/slow-admin.json")"
	stop "$nb_pid"
	stop "$sink_pid"
}

# ---- scenarios ----------------------------------------------------------------

load0=$(cut -d' ' -f1 /proc/loadavg)

# nudgebridge, the peer and the bare server alternate, so a change in the
# machine's load hits all of them.
for who in nb peer bare; do
	if wants a; then ingest a "$who" sqlite --connections 64 --rate 0; fi
done
for who in nb peer; do
	if wants b; then ingest b "$who" sqlite --connections 64 --rate 0 --events-per-request 100; fi
done
if wants c; then
	mkdir -p "$scratch/c-nb"
	say "== (c) the disk: 2,000 appends of 4 KiB + fdatasync in the database's folder"
	"$fsprobe" "$scratch/c-nb" --count 2000 --bytes 4096 >"$scratch/c-nb/fsprobe.json"
	say "   $(cat "$scratch/c-nb/fsprobe.json")"
	R[c.fs.p50]=$(jq .fdatasync_ms.p50 "$scratch/c-nb/fsprobe.json")
	R[c.fs.p99]=$(jq .fdatasync_ms.p99 "$scratch/c-nb/fsprobe.json")
	R[c.fs.p999]=$(jq .fdatasync_ms.p999 "$scratch/c-nb/fsprobe.json")
	for who in nb peer; do
		ingest c "$who" sqlite --connections 64 --rate 5000
	done
fi
if wants d; then
	backlog_load "$scratch/d-nb" "$sqlite_store" d
	drain "$scratch/d-nb" "$sqlite_store" d "${R[d.loaded]}" 1
fi

if wants_pg; then
	pg_up
	if wants q; then
		pg_createdb nbb_q
		ingest q nb nbb_q --connections 64 --rate 0
	fi
	if wants r || wants t; then
		pg_createdb nbb_backlog
		backlog_load "$scratch/r-nb" "$(pg_store nbb_backlog)" r
	fi
	if wants r; then
		pg_createdb nbb_r nbb_backlog
		drain "$scratch/r-nb" "$(pg_store nbb_r)" r "${R[r.loaded]}" 1
	fi
	if wants t; then
		dir=$scratch/t-nb
		pg_createdb nbb_t_ingest
		start_bg "$dir-sink.log" "$nbsink" --port "$nb_sink_port" --write-key "$write_key"
		t_sink=$bg
		nb_config "$dir" "$nb_port" "$nb_sink_port" "$(pg_store nbb_t_ingest)"
		nb_config "$dir/2" "$nb2_port" "$nb_sink_port" "$(pg_store nbb_t_ingest)"
		start_nb "$dir" "$nb_port" "$dir/nudgebridge-1.log"
		t1=$nb_pid
		start_nb "$dir/2" "$nb2_port" "$dir/nudgebridge-2.log"
		t2=$nb_pid
		say "== (t) two instances on one PostgreSQL: nbload over both, 64 connections"
		out=$("$nbload" --port "$nb_port,$nb2_port" --source "$source" \
			--secret "$secret" --warmup "$warmup" --duration "$duration" \
			--connections 64 --rate 0 --label t-fleet)
		echo "$out" >"$dir/nbload.json"
		say "   $(echo "$out" | jq -c '{req_per_s, status, errors, latency_ms}')"
		keep_load t.nb "$out"
		R[t.nb.hwm]=$(max "$(hwm_mb "$t1")" "$(hwm_mb "$t2")")
		stop "$t1"
		stop "$t2"
		stop "$t_sink"
		pg_createdb nbb_t nbb_backlog
		drain "$dir" "$(pg_store nbb_t)" t "${R[r.loaded]}" 2
	fi
	pg_down
fi

if wants p; then scenario_p; fi
if wants s; then scenario_s; fi

# ---- the table ----------------------------------------------------------------

R[e.sqlite]=$(max "$(max "${R[a.nb.hwm]:-}" "${R[b.nb.hwm]:-}")" \
	"$(max "${R[c.nb.hwm]:-}" "${R[d.load_hwm]:-}")")
R[e.peer]=$(max "$(max "${R[a.peer.hwm]:-}" "${R[b.peer.hwm]:-}")" "${R[c.peer.hwm]:-}")
R[e.pg]=$(max "$(max "${R[q.nb.hwm]:-}" "${R[r.load_hwm]:-}")" "${R[t.nb.hwm]:-}")
for k in e.sqlite e.peer e.pg; do [ "${R[$k]}" != 0 ] || R[$k]=; done

isnum() { case "$1" in '' | n/a | null | *[!0-9.e+-]*) return 1 ;; *) return 0 ;; esac; }
fmt() { # fmt VALUE DECIMALS: numbers rounded, anything else as it is
	if isnum "$1"; then awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'
	elif [ -z "$1" ] || [ "$1" = null ]; then echo "n/a"
	else echo "$1"; fi
}
ratio() {
	if isnum "$1" && isnum "$2"; then
		awk -v a="$1" -v b="$2" 'BEGIN {
			if (b + 0 == 0) { print "n/a"; exit }
			r = a / b; printf (r < 0.1 ? "%.3fx" : "%.2fx"), r }'
	else echo "n/a"; fi
}
# met OP VALUE LIMIT: yes / no / n/a
met() {
	isnum "$2" && isnum "$3" || { echo "n/a"; return; }
	awk -v op="$1" -v v="$2" -v l="$3" 'BEGIN {
		ok = (op == "ge") ? v >= l : (op == "le") ? v <= l : v < l
		print ok ? "yes" : "no" }'
}
# row LABEL VALUE DECIMALS REF_NAME REF_VALUE TARGET MET; a row is left out
# unless one of the scenarios it comes from ran: $FROM when set (e and f
# rows), else the letter LABEL starts with.
row() {
	local ref=n/a r=n/a letters=${FROM:-${1:1:1}}
	case "$only" in *["$letters"]*) ;; *) return 0 ;; esac
	if [ -n "${4:-}" ]; then
		ref="$4: $(fmt "${5:-}" "$3")"
		r=$(ratio "$2" "${5:-}")
	fi
	printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$(fmt "$2" "$3")" \
		"$ref" "$r" "${6:-—}" "${7:-—}"
}
rv() { echo "${R[$1]:-}"; }
rat() {
	isnum "$(rv "$1")" && isnum "$(rv "$2")" || return 0
	awk -v a="$(rv "$1")" -v b="$(rv "$2")" 'BEGIN { if (b > 0) print a / b }'
}
# within2x LOADED BASE: LOADED <= max(2 x BASE, BASE + 20) ms
within2x() {
	isnum "$1" && isnum "$2" || { echo "n/a"; return; }
	awk -v v="$1" -v b="$2" 'BEGIN { l = 2 * b; if (b + 20 > l) l = b + 20; print v <= l ? "yes" : "no" }'
}

nbv=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] || nbv="$nbv+"
table=$scratch/results.md
{
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	echo "nudgebridge $nbv, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($cpu)," \
		"run.sh$([ "$quick" = 1 ] && echo ' --quick')$([ "$only" = abcdqrtps ] || echo " --only $only")" \
		"(${duration} s runs, ${warmup} s warm-up, backlog $backlog, retained $retained," \
		"http_threads $threads${R[pg.version]:+, PostgreSQL ${R[pg.version]}}; load average $load0 at start)"
	echo
	echo "| scenario | nudgebridge | reference | ratio | target | met |"
	echo "|---|---:|---:|---:|---|---|"
	row "(a) single-event ingest on SQLite, 64 conns, closed loop: req/s" "$(rv a.nb.rps)" 0 "" "" ">= 30,000" "$(met ge "$(rv a.nb.rps)" 30000)"
	row "(a) the same against the Node peer" "$(rv a.nb.rps)" 0 peer "$(rv a.peer.rps)" ">= 4x" "$(met ge "$(rat a.nb.rps a.peer.rps)" 4)"
	row "(a) the same against bare evhttp (answers 200, nothing else)" "$(rv a.nb.rps)" 0 "bare evhttp" "$(rv a.bare.rps)" ">= 0.60x" "$(met ge "$(rat a.nb.rps a.bare.rps)" 0.6)"
	row "(a) p50 latency, ms" "$(rv a.nb.p50)" 2 peer "$(rv a.peer.p50)"
	row "(a) p99 latency, ms" "$(rv a.nb.p99)" 2 peer "$(rv a.peer.p99)"
	row "(q) single-event ingest on PostgreSQL, 64 conns: req/s" "$(rv q.nb.rps)" 0 "SQLite (a)" "$(rv a.nb.rps)" ">= 0.67x" "$(met ge "$(rat q.nb.rps a.nb.rps)" 0.6667)"
	row "(q) p99 latency, ms" "$(rv q.nb.p99)" 2 "SQLite (a)" "$(rv a.nb.p99)"
	row "(b) 100-event arrays on SQLite, 64 conns: events/s" "$(rv b.nb.eps)" 0 peer "$(rv b.peer.eps)" ">= 150,000" "$(met ge "$(rv b.nb.eps)" 150000)"
	row "(c) open loop at 5,000 req/s on SQLite: answered req/s" "$(rv c.nb.rps)" 0 peer "$(rv c.peer.rps)"
	row "(c) p50 latency, ms" "$(rv c.nb.p50)" 2 peer "$(rv c.peer.p50)"
	row "(c) p99 latency, ms" "$(rv c.nb.p99)" 2 "disk fdatasync p99" "$(rv c.fs.p99)" "<= 2x" "$(met le "$(rat c.nb.p99 c.fs.p99)" 2)"
	row "(c) p99.9 latency, ms" "$(rv c.nb.p999)" 2 "disk fdatasync p99.9" "$(rv c.fs.p999)" "<= 10 ms" "$(met le "$(rv c.nb.p999)" 10)"
	row "(d) drain of ${R[d.loaded]:-$backlog} events on SQLite (gzip $(rv d.gzip)): events/s" "$(rv d.eps)" 0 "" "" ">= 100,000" "$(met ge "$(rv d.eps)" 100000)"
	row "(d) bytes on the wire per event (SQLite drain)" "$(rv d.bpe)" 0 "JSON bytes" "$(rv d.rawpe)"
	row "(r) drain of ${R[r.loaded]:-$backlog} events on PostgreSQL (gzip $(rv r.gzip)): events/s" "$(rv r.eps)" 0 "SQLite (d)" "$(rv d.eps)" ">= 100,000" "$(met ge "$(rv r.eps)" 100000)"
	row "(r) bytes on the wire per event (PostgreSQL drain)" "$(rv r.bpe)" 0 "JSON bytes" "$(rv r.rawpe)"
	row "(t) two instances on one PostgreSQL: ingest req/s" "$(rv t.nb.rps)" 0 "one instance (q)" "$(rv q.nb.rps)" "what the second adds"
	row "(t) two instances: drain events/s (gzip $(rv t.gzip))" "$(rv t.eps)" 0 "one instance (r)" "$(rv r.eps)" "what the second adds"
	FROM=abcd row "(e) peak RSS during ingest on SQLite (a-d), MB" "$(rv e.sqlite)" 1 peer "$(rv e.peer)" "<= 40" "$(met le "$(rv e.sqlite)" 40)"
	FROM=qrt row "(e) peak RSS during ingest on PostgreSQL (q, r, t), MB" "$(rv e.pg)" 1 "SQLite" "$(rv e.sqlite)" "<= 40" "$(met le "$(rv e.pg)" 40)"
	FROM=dr row "(e) RSS when ready with the backlog (SQLite), MB" "$(rv d.ready_rss)" 1 "PostgreSQL" "$(rv r.ready_rss)"
	FROM=dr row "(e) peak RSS during the drain (SQLite), MB" "$(rv d.drain_hwm)" 1 "PostgreSQL" "$(rv r.drain_hwm)"
	FROM=dr row "(f) start-up with the backlog, exec to /readyz 200 (SQLite), ms" "$(rv d.ready_ms)" 0 "PostgreSQL" "$(rv r.ready_ms)"
	row "(p) webhook p50, empty store ($sender_rate req/s; 4 /metrics + 1 /v1/stats pollers), ms" "$(rv p.e.p50)" 2
	row "(p) webhook p99, empty store, ms" "$(rv p.e.p99)" 2
	row "(p) webhook p50 with $retained delivered events retained, ms" "$(rv p.f.p50)" 2 "empty store" "$(rv p.e.p50)"
	row "(p) webhook p99 with $retained retained, ms" "$(rv p.f.p99)" 2 "empty store" "$(rv p.e.p99)" "<= 2x or +20 ms" "$(within2x "$(rv p.f.p99)" "$(rv p.e.p99)")"
	row "(p) webhooks answered 2xx with $retained retained, % of those due" "$(rv p.f.okpct)" 1 "empty store" "$(rv p.e.okpct)"
	row "(p) webhooks unanswered at the end, in the percentiles as lower bounds" "$(rv p.f.censored)" 0 "empty store" "$(rv p.e.censored)"
	row "(p) /metrics p50 with $retained retained, ms" "$(rv p.f.m50)" 2 "empty store" "$(rv p.e.m50)"
	row "(p) /metrics p99 with $retained retained, ms" "$(rv p.f.m99)" 2 "empty store" "$(rv p.e.m99)" "< 50 ms" "$(met lt "$(rv p.f.m99)" 50)"
	row "(p) /v1/stats p50 with $retained retained, ms" "$(rv p.f.s50)" 2 "empty store" "$(rv p.e.s50)"
	row "(p) /v1/stats p99 with $retained retained, ms" "$(rv p.f.s99)" 2 "empty store" "$(rv p.e.s99)"
	row "(p) peak RSS with $retained retained, MB" "$(rv p.f.rss)" 1 "empty store" "$(rv p.e.rss)"
	row "(p) peak open descriptors with $retained retained" "$(rv p.f.fds)" 0 "empty store" "$(rv p.e.fds)"
	row "(s) signed sender p50 under 1,000 idle + 100 slow conns per listener, ms" "$(rv s.l.p50)" 2 "without them" "$(rv s.b.p50)"
	row "(s) signed sender p99 under that load, ms" "$(rv s.l.p99)" 2 "without them" "$(rv s.b.p99)" "<= 2x or +20 ms" "$(within2x "$(rv s.l.p99)" "$(rv s.b.p99)")"
	row "(s) signed requests answered 2xx under that load, % of those due" "$(rv s.l.okpct)" 1 "without them" "$(rv s.b.okpct)"
	row "(s) signed requests unanswered at the end (lower bounds)" "$(rv s.l.censored)" 0 "without them" "$(rv s.b.censored)"
	row "(s) peak RSS under that load, MB" "$(rv s.l.rss)" 1 "without them" "$(rv s.b.rss)" "< 100" "$(met lt "$(rv s.l.rss)" 100)"
	row "(s) peak open descriptors under that load" "$(rv s.l.fds)" 0 "without them" "$(rv s.b.fds)"
	row "(s) idle and slow connections the bridge closed" "$(rv s.closed)" 0
	row "(s) answers to the huge-body senders, by status" "$(rv s.huge)" 0
} >"$table"
echo
cat "$table"
if [ "$keep" = 1 ]; then
	say "== raw results: $scratch/*/*.json, table: $table"
fi
