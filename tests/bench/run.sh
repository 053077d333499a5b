#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# nudgebridge benchmarks, side by side with the Node.js peer of
# ../shared/bench/peer-node.  One command:
#
#   tests/bench/run.sh [--quick] [--backlog N] [--duration S] [--no-build]
#                      [--keep] [--only abcd]
#
# builds a Release nudgebridge (build-bench/) and the tools (nbload, nbsink in
# build-bench-tools/), installs the peer into a scratch folder, runs the
# scenarios of docs/benchmarks.md (--only picks some of a, b, c and d; e and
# f come with them) with every process on 127.0.0.1, and
# prints one Markdown table (scenario | nudgebridge | peer | ratio).  Each
# system gets its own nbsink (a Segment stand-in) and a fresh process per
# scenario.  Logs, configurations and raw nbload JSON stay in the scratch
# folder it names at the end (removed unless --keep).
#
# Environment: NB_BENCH_PORT_BASE (default 18400; five ports from there),
# NB_BENCH_PEER (peer sources, default ../shared/bench/peer-node),
# NB_BENCH_BUILD / NB_BENCH_TOOLS (build folders), NB_BENCH_DRAIN_RPS
# (segment.rate_limit_rps during the drain, default 1000).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

quick=0
build=1
keep=0
backlog=
duration=
only=abcd
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--no-build) build=0 ;;
	--keep) keep=1 ;;
	--backlog) backlog=$2; shift ;;
	--duration) duration=$2; shift ;;
	--only) only=$2; shift ;;
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
case "$backlog" in '' | *[!0-9]*) echo "run.sh: --backlog N" >&2; exit 2 ;; esac
if [ $((backlog % 100)) -ne 0 ] || [ "$backlog" -lt 100 ]; then
	echo "run.sh: --backlog must be a multiple of 100" >&2
	exit 2
fi

nb_build=${NB_BENCH_BUILD:-$root/build-bench}
tools=${NB_BENCH_TOOLS:-$root/build-bench-tools}
peer_src=${NB_BENCH_PEER:-$root/../shared/bench/peer-node}
base=${NB_BENCH_PORT_BASE:-18400}
nb_port=$base
nb_sink_port=$((base + 1))
peer_port=$((base + 2))
peer_sink_port=$((base + 3))
reject_port=$((base + 4))
# The drain measures the bridge, not its outbound throttle: the default of 50
# batch requests/s per write key caps a drain near 50 x ~600 events.
drain_rps=${NB_BENCH_DRAIN_RPS:-1000}
write_key=wk_bench
source=acme

say() { printf '%s\n' "$*" >&2; }
die() { say "run.sh: $*"; exit 1; }

for cmd in cmake jq curl node npm; do
	command -v "$cmd" >/dev/null || die "$cmd is needed"
done
for p in $nb_port $nb_sink_port $peer_port $peer_sink_port $reject_port; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		die "port $p is in use (set NB_BENCH_PORT_BASE)"
	fi
done

# ---- build ------------------------------------------------------------------

if [ "$build" = 1 ]; then
	say "== building nudgebridge (Release) in $nb_build"
	cmake -S "$root" -B "$nb_build" -DCMAKE_BUILD_TYPE=Release \
		-DNB_TESTS=OFF >/dev/null
	cmake --build "$nb_build" -j2 >/dev/null
	say "== building nbload and nbsink in $tools"
	cmake -S "$here" -B "$tools" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$tools" -j2 >/dev/null
fi
nb=$nb_build/nudgebridge
nbload=$tools/nbload
nbsink=$tools/nbsink
for f in "$nb" "$nbload" "$nbsink"; do
	[ -x "$f" ] || die "$f is missing (run without --no-build)"
done

scratch=$(mktemp -d /tmp/nbbench.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [ "$keep" = 1 ]; then
		say "== scratch kept in $scratch"
	else
		rm -rf "$scratch"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "== installing the peer in $scratch/peer"
cp -r "$peer_src" "$scratch/peer"
chmod -R u+w "$scratch/peer"
(cd "$scratch/peer" && npm install --no-audit --no-fund --silent >/dev/null)

secret=whsec_$(head -c 32 /dev/urandom | base64 -w0)

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

wait_ready() { "$nbload" --port "$1" --wait-ready --timeout 60 >/dev/null; }

sink_unique() {
	curl -sf "http://127.0.0.1:$1/stats" | jq -r .unique 2>/dev/null || echo 0
}

# wait_delivered PORT N TIMEOUT_S: until the sink on PORT saw N messageIds.
wait_delivered() {
	local port=$1 want=$2 limit=$(($3 * 10)) got=0
	for _ in $(seq "$limit"); do
		got=$(sink_unique "$port")
		[ "$got" -ge "$want" ] && break
		sleep 0.1
	done
	echo "$got"
}

# nb_config DIR SINK_PORT [SEGMENT_EXTRA]: writes DIR/config.json for
# nudgebridge; SEGMENT_EXTRA is more JSON members of "segment".
nb_config() {
	mkdir -p "$1"
	cat >"$1/config.json" <<EOF
{
  "listen": "127.0.0.1:$nb_port",
  "log": { "level": "warn" },
  "store": { "driver": "sqlite", "path": "nb.db" },
  "limits": { "timestamp_tolerance_s": 300 },
  "segment": { "endpoint": "http://127.0.0.1:$2"${3:+, $3} },
  "sources": [
    { "name": "$source", "signing_secrets": ["$secret"], "write_key": "$write_key" }
  ]
}
EOF
}

# start_target nb|peer DIR: the system under test and its sink; sets
# $target_pid and $sink_pid.
start_target() {
	local who=$1 dir=$2
	mkdir -p "$dir"
	if [ "$who" = nb ]; then
		start_bg "$dir/sink.log" "$nbsink" --port "$nb_sink_port" \
			--write-key "$write_key"
		sink_pid=$bg
		nb_config "$dir" "$nb_sink_port"
		start_bg "$dir/nudgebridge.log" "$nb" serve \
			--config "$dir/config.json"
		target_pid=$bg
		wait_ready "$nb_port" || die "nudgebridge did not get ready ($dir)"
	else
		start_bg "$dir/sink.log" "$nbsink" --port "$peer_sink_port" \
			--write-key "$write_key"
		sink_pid=$bg
		(cd "$scratch/peer" && PORT=$peer_port \
			SINK=http://127.0.0.1:$peer_sink_port SECRET=$secret \
			WRITE_KEY=$write_key exec node server.js) \
			>"$dir/peer.log" 2>&1 &
		target_pid=$!
		pids+=("$target_pid")
		for _ in $(seq 100); do
			(exec 3<>"/dev/tcp/127.0.0.1/$peer_port") 2>/dev/null &&
				break
			sleep 0.1
		done
	fi
}

port_of() { if [ "$1" = nb ]; then echo "$nb_port"; else echo "$peer_port"; fi; }
sink_port_of() {
	if [ "$1" = nb ]; then echo "$nb_sink_port"; else echo "$peer_sink_port"; fi
}

declare -A R

# ingest SCENARIO WHO NBLOAD-ARGS...: one fresh target, one nbload run.
ingest() {
	local sc=$1 who=$2 dir out ok delivered
	shift 2
	dir=$scratch/$sc-$who
	start_target "$who" "$dir"
	say "== ($sc) $who: nbload $*"
	out=$("$nbload" --port "$(port_of "$who")" --source "$source" \
		--secret "$secret" --warmup "$warmup" --duration "$duration" \
		--label "$sc-$who" "$@")
	echo "$out" >"$dir/nbload.json"
	say "   $(echo "$out" | jq -c '{req_per_s, events_per_s, status, errors, latency_ms}')"
	R[$sc.$who.rps]=$(echo "$out" | jq .req_per_s)
	R[$sc.$who.eps]=$(echo "$out" | jq .events_per_s)
	R[$sc.$who.p50]=$(echo "$out" | jq .latency_ms.p50)
	R[$sc.$who.p99]=$(echo "$out" | jq .latency_ms.p99)
	R[$sc.$who.p999]=$(echo "$out" | jq .latency_ms.p999)
	R[$sc.$who.hwm]=$(hwm_mb "$target_pid")
	ok=$(echo "$out" | jq .total.events_ok)
	delivered=$(wait_delivered "$(sink_port_of "$who")" "$ok" 30)
	say "   peak RSS ${R[$sc.$who.hwm]:-} MB; delivered $delivered of $ok accepted events"
	stop "$target_pid"
	stop "$sink_pid"
}

# ---- scenarios ----------------------------------------------------------------

load0=$(cut -d' ' -f1 /proc/loadavg)

wants() { case "$only" in *"$1"*) return 0 ;; *) return 1 ;; esac; }

# nudgebridge and the peer alternate, so a change in the machine's load
# hits both.
for who in nb peer; do
	if wants a; then ingest a "$who" --connections 64 --rate 0; fi
done
for who in nb peer; do
	if wants b; then ingest b "$who" --connections 64 --rate 0 --events-per-request 100; fi
done
for who in nb peer; do
	if wants c; then ingest c "$who" --connections 64 --rate 5000; fi
done

if wants d; then
	# (d)-(f): a backlog of $backlog events, taken in while Segment refuses the
	# write key (401 pauses delivery without spending attempts), then a restart
	# against a sink that accepts.
	dir=$scratch/d-nb
	mkdir -p "$dir"
	say "== (d) ingesting a backlog of $backlog events (sink answers 401)"
	start_bg "$dir/reject.log" "$nbsink" --port "$reject_port" --write-key not-"$write_key"
	reject_pid=$bg
	nb_config "$dir" "$reject_port"
	start_bg "$dir/nudgebridge-1.log" "$nb" serve --config "$dir/config.json"
	target_pid=$bg
	wait_ready "$nb_port" || die "nudgebridge did not get ready (backlog)"
	out=$("$nbload" --port "$nb_port" --source "$source" --secret "$secret" \
		--connections 16 --events-per-request 100 \
		--max-requests $((backlog / 100)) --warmup 0 --duration 540 \
		--grace 30 --label d-ingest)
	echo "$out" >"$dir/nbload.json"
	accepted=$(echo "$out" | jq .total.accepted)
	ingest_s=$(echo "$out" | jq .total.elapsed_s)
	R[d.nb.ingest_hwm]=$(hwm_mb "$target_pid")
	say "   accepted $accepted events in $ingest_s s; peak RSS ${R[d.nb.ingest_hwm]:-} MB"
	[ "$accepted" -eq "$backlog" ] || say "   !! accepted $accepted, wanted $backlog"
	stop "$target_pid"
	stop "$reject_pid"
	say "   store: $(du -sh "$dir" | cut -f1)"

	say "== (d)(f) restart against an accepting sink; timing start-up and drain"
	start_bg "$dir/sink.log" "$nbsink" --port "$nb_sink_port" --write-key "$write_key"
	sink_pid=$bg
	nb_config "$dir" "$nb_sink_port" "\"rate_limit_rps\": $drain_rps"
	t0=$(date +%s%N)
	start_bg "$dir/nudgebridge-2.log" "$nb" serve --config "$dir/config.json"
	target_pid=$bg
	wait_ready "$nb_port" || die "nudgebridge did not get ready with the backlog"
	t_ready=$(date +%s%N)
	rss_ready=$(rss_mb "$target_pid")
	limit=$((quick == 1 ? 1200 : 3000)) # polls of 0.1 s
	got=0
	for _ in $(seq "$limit"); do
		got=$(sink_unique "$nb_sink_port")
		[ "$got" -ge "$accepted" ] && break
		sleep 0.1
	done
	t_done=$(date +%s%N)
	R[d.nb.drain_hwm]=$(hwm_mb "$target_pid")
	R[d.nb.ready_rss]=$rss_ready
	say "   sink: $(curl -sf "http://127.0.0.1:$nb_sink_port/stats" || echo '?')"
	rss_done=$(rss_mb "$target_pid")
	stop "$target_pid"
	stop "$sink_pid"
	R[f.nb.ms]=$(awk -v a="$t0" -v b="$t_ready" 'BEGIN { printf "%.0f", (b - a) / 1e6 }')
	drain_s=$(awk -v a="$t0" -v b="$t_done" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
	if [ "$got" -ge "$accepted" ] && [ "$accepted" -gt 0 ]; then
		R[d.nb.eps]=$(awk -v n="$accepted" -v s="$drain_s" 'BEGIN { printf "%.0f", n / s }')
	else
		R[d.nb.eps]=n/a
		say "   !! the sink saw only $got of $accepted events"
	fi
	say "   ready after ${R[f.nb.ms]:-} ms (RSS $rss_ready MB); $got events delivered" \
		"in $drain_s s from exec; RSS at the end $rss_done MB, peak ${R[d.nb.drain_hwm]:-} MB"
fi

# ---- the table ----------------------------------------------------------------

max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 > b + 0) ? a : b }'; }
R[e.nb.hwm]=$(max "$(max "${R[a.nb.hwm]:-}" "${R[b.nb.hwm]:-}")" \
	"$(max "${R[c.nb.hwm]:-}" "${R[d.nb.ingest_hwm]:-}")")
R[e.peer.hwm]=$(max "$(max "${R[a.peer.hwm]:-}" "${R[b.peer.hwm]:-}")" "${R[c.peer.hwm]:-}")

fmt() {
	case "$1" in
	n/a | '') echo "n/a" ;;
	*) awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }' ;;
	esac
}
ratio() {
	case "$1$2" in
	*n/a* | '') echo "n/a" ;;
	*) awk -v a="$1" -v b="$2" 'BEGIN {
		if (b + 0 == 0) { print "n/a"; exit }
		r = a / b; printf (r < 0.1 ? "%.3fx" : "%.2fx"), r }' ;;
	esac
}
row() { # row LABEL NB PEER DECIMALS
	printf '| %s | %s | %s | %s |\n' "$1" "$(fmt "$2" "$4")" \
		"$(fmt "$3" "$4")" "$(ratio "$2" "$3")"
}

nbv=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
table=$scratch/results.md
{
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	echo "nudgebridge $nbv, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($cpu)," \
		"run.sh $([ "$quick" = 1 ] && echo --quick) (${duration} s runs," \
		"${warmup} s warm-up, backlog $backlog; load average $load0 at start)"
	echo
	echo "| scenario | nudgebridge | peer | ratio (nudgebridge / peer) |"
	echo "|---|---:|---:|---:|"
	row "(a) single-event ingest, 64 conns, closed loop: req/s" "${R[a.nb.rps]:-}" "${R[a.peer.rps]:-}" 0
	row "(a) p50 latency, ms" "${R[a.nb.p50]:-}" "${R[a.peer.p50]:-}" 2
	row "(a) p99 latency, ms" "${R[a.nb.p99]:-}" "${R[a.peer.p99]:-}" 2
	row "(b) 100-event arrays, 64 conns: events/s" "${R[b.nb.eps]:-}" "${R[b.peer.eps]:-}" 0
	row "(c) open loop at 5,000 req/s: answered req/s" "${R[c.nb.rps]:-}" "${R[c.peer.rps]:-}" 0
	row "(c) p50 latency, ms" "${R[c.nb.p50]:-}" "${R[c.peer.p50]:-}" 2
	row "(c) p99 latency, ms" "${R[c.nb.p99]:-}" "${R[c.peer.p99]:-}" 2
	row "(c) p99.9 latency, ms" "${R[c.nb.p999]:-}" "${R[c.peer.p999]:-}" 2
	row "(d) drain a $backlog-event backlog (rate_limit_rps $drain_rps): events/s" "${R[d.nb.eps]:-}" n/a 0
	row "(e) peak RSS during ingest (a-d), MB" "${R[e.nb.hwm]:-}" "${R[e.peer.hwm]:-}" 1
	row "(e) RSS when ready with the backlog, MB" "${R[d.nb.ready_rss]:-}" n/a 1
	row "(e) peak RSS during drain, MB" "${R[d.nb.drain_hwm]:-}" n/a 1
	row "(f) start-up with the backlog, exec to /readyz 200, ms" "${R[f.nb.ms]:-}" n/a 0
} >"$table"
echo
cat "$table"
if [ "$keep" = 1 ]; then
	say "== raw results: $scratch/*/nbload.json, table: $table"
fi
