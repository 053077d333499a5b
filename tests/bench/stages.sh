#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# Instructions per single-event request, stage by stage, for the "before" and
# "after" columns of docs/benchmarks.md (callgrind counts are stable where
# wall-clock figures on a shared machine are not).
#
#   tests/bench/stages.sh [--requests N] [--log-level L] [--keep DIR]
#                         [--no-build]
#
# builds nudgebridge RelWithDebInfo in build-cg/ (and the tools, see run.sh),
# runs it under valgrind --tool=callgrind --separate-threads=yes with
# http_threads 1 (the HTTP thread is the main thread) and delivery paused
# (its sink answers 401), sends 200 warm-up requests, zeroes the counters,
# sends N (default 5,000) signed single-event requests over 4 connections
# and dumps; then the same for nbbare, the bare evhttp server.  The bridge
# logs at --log-level (default info, the shipped default: one access line
# per webhook).  Prints a Markdown table of inclusive instructions per
# request:
#
#   whole request    everything the HTTP thread ran, / N
#   gate             input_cb: the gate's second look at the head
#   signature        nb_sig_verify_key
#   activity         nb_activity_note + nb_metrics_skew (last use, skew)
#   parse            nb_nudgespot_parse
#   commit hand-off  nb_commit_submit_on, plus done_cb (the completion
#                    channel's wake-up on the HTTP thread) less commit_cb
#   reply            commit_cb: counters, log line, the 200 body and
#                    evhttp_send_reply (shown apart too)
#   log line         log_webhook (formatting and handing the line on)
#   libevent parse   evhttp_parse_firstline_ + evhttp_parse_headers_ +
#                    evhttp_request_free
#   bare evhttp      nbbare's event loop, / N: the framework's own cost
#   committer        nb_store_append on the writer thread, / N (small
#                    groups: 4 connections)
#
# A stage whose function no longer exists (renamed by a refactor) shows n/a:
# adjust the names below.  --keep DIR leaves the callgrind profiles there
# (for callgrind_annotate).  Environment: NB_STAGES_PORT_BASE (default
# 18430, three ports).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
n=5000
build=1
level=info
keep=
while [ $# -gt 0 ]; do
	case "$1" in
	--requests) n=$2; shift ;;
	--no-build) build=0 ;;
	--log-level) level=$2; shift ;;
	--keep) keep=$2; shift ;;
	-h | --help) sed -n '4,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
	*) echo "stages.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
case "$n" in '' | *[!0-9]*) echo "stages.sh: --requests N" >&2; exit 2 ;; esac

cg_build=$root/build-cg
tools=${NB_BENCH_TOOLS:-$root/build-bench-tools}
base=${NB_STAGES_PORT_BASE:-18430}
port=$base
sink_port=$((base + 1))
bare_port=$((base + 2))

say() { printf '%s\n' "$*" >&2; }
die() { say "stages.sh: $*"; exit 1; }
for cmd in cmake valgrind callgrind_annotate callgrind_control jq; do
	command -v "$cmd" >/dev/null || die "$cmd is needed (Debian package valgrind)"
done
if [ "$build" = 1 ]; then
	say "== building nudgebridge (RelWithDebInfo) in $cg_build and the tools"
	cmake -S "$root" -B "$cg_build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DNB_TESTS=OFF -DNB_SANITIZE=OFF -DNB_LIB_ONLY= >/dev/null
	cmake --build "$cg_build" -j2 >/dev/null
	cmake -S "$here" -B "$tools" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$tools" -j2 --target nbload nbsink nbbare >/dev/null
fi

scratch=$(mktemp -d /tmp/nbstages.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -n "$keep" ]; then
		mkdir -p "$keep" && cp "$scratch"/*.out* "$keep"/ 2>/dev/null || true
	fi
	rm -rf "$scratch"
}
trap cleanup EXIT
secret=whsec_$(head -c 32 /dev/urandom | base64 -w0)

# profile NAME PORT CMD...: runs CMD under callgrind, loads it, leaves the
# dumped profile files in $scratch/NAME.out.1*.
profile() {
	local name=$1 p=$2 vp
	shift 2
	valgrind --tool=callgrind --separate-threads=yes \
		--callgrind-out-file="$scratch/$name.out" "$@" \
		>"$scratch/$name.log" 2>&1 &
	vp=$!
	pids+=("$vp")
	for _ in $(seq 240); do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
		sleep 0.5
	done
	"$tools/nbload" --port "$p" --wait-ready --timeout 120 >/dev/null ||
		die "$name did not get ready"
	"$tools/nbload" --port "$p" --secret "$secret" --max-requests 200 \
		--connections 4 --rate 0 --warmup 0 --duration 600 >/dev/null
	callgrind_control -z "$vp" >/dev/null 2>&1
	say "== $name: $n requests under callgrind"
	"$tools/nbload" --port "$p" --secret "$secret" --max-requests "$n" \
		--connections 4 --rate 0 --warmup 0 --duration 3600 \
		>"$scratch/$name.nbload.json"
	[ "$(jq .total.ok "$scratch/$name.nbload.json")" = "$n" ] ||
		die "$name: not every request got a 2xx ($(cat "$scratch/$name.nbload.json"))"
	callgrind_control -d "$vp" >/dev/null 2>&1
	for _ in $(seq 100); do
		ls "$scratch/$name.out.1"* >/dev/null 2>&1 && break
		sleep 0.1
	done
	sleep 1 # the dump of every thread
	kill "$vp"
	wait "$vp" 2>/dev/null || true
}

"$tools/nbsink" --port "$sink_port" --write-key not-the-key >"$scratch/sink.log" 2>&1 &
pids+=("$!")
mkdir -p "$scratch/nb"
cat >"$scratch/nb/config.json" <<EOF
{
  "listen": "127.0.0.1:$port",
  "http_threads": 1,
  "log": { "level": "$level" },
  "store": { "driver": "sqlite", "path": "nb.db" },
  "limits": { "timestamp_tolerance_s": 300 },
  "segment": { "endpoint": "http://127.0.0.1:$sink_port" },
  "sources": [ { "name": "acme", "signing_secrets": ["$secret"], "write_key": "wk" } ]
}
EOF
profile nb "$port" "$cg_build/nudgebridge" serve --config "$scratch/nb/config.json"
profile bare "$bare_port" "$tools/nbbare" --port "$bare_port"

# incl FILE FUNCTION: inclusive instructions of FUNCTION in FILE, or empty.
incl() {
	callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
		awk -v f=":$2 " '
		!seen && index($0, f) { gsub(",", "", $1); print $1; seen = 1 }'
}
# The thread whose profile holds FUNCTION.
thread_of() {
	local f
	for f in "$scratch/$1.out.1"*; do
		if [ -n "$(incl "$f" "$2")" ]; then
			echo "$f"
			return 0
		fi
	done
	return 0
}
total() { awk '/^summary:/ { print $2 }' "$1"; }
per() { if [ -n "${1:-}" ]; then awk -v v="$1" -v n="$n" 'BEGIN { printf "%.0f", v / n }'; else echo n/a; fi; }

http=$(thread_of nb http_cb)
writer=$(thread_of nb nb_store_append)
[ -n "$http" ] || die "no HTTP thread in the profile"
sig=$(incl "$http" nb_sig_verify_key)
gate=$(incl "$http" input_cb)
note=$(incl "$http" nb_activity_note)
skew=$(incl "$http" nb_metrics_skew)
activity=
if [ -n "$note" ] && [ -n "$skew" ]; then activity=$((note + skew)); fi
logline=$(incl "$http" log_webhook)
parse=$(incl "$http" nb_nudgespot_parse)
submit=$(incl "$http" nb_commit_submit_on)
done_cb=$(incl "$http" done_cb)
reply=$(incl "$http" commit_cb)
send=$(incl "$http" evhttp_send_reply)
handoff=
if [ -n "$submit" ] && [ -n "$done_cb" ] && [ -n "$reply" ]; then
	handoff=$((submit + done_cb - reply))
fi
lp=
a=$(incl "$http" evhttp_parse_firstline_)
b=$(incl "$http" evhttp_parse_headers_)
c=$(incl "$http" evhttp_request_free)
if [ -n "$a" ] && [ -n "$b" ] && [ -n "$c" ]; then lp=$((a + b + c)); fi
bare_thread=$(thread_of bare request_cb)
bare=
[ -z "$bare_thread" ] || bare=$(total "$bare_thread")

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo
echo "nudgebridge $commit, RelWithDebInfo, callgrind, http_threads 1, log level $level, $n single-event requests over 4 connections"
echo
echo "| stage (instructions per request) | count |"
echo "|---|---:|"
echo "| whole request, HTTP thread | $(per "$(total "$http")") |"
echo "| gate (\`input_cb\`: the head checked before evhttp reads it) | $(per "$gate") |"
echo "| signature (\`nb_sig_verify_key\`) | $(per "$sig") |"
echo "| last use and clock skew (\`nb_activity_note\`, \`nb_metrics_skew\`) | $(per "$activity") |"
echo "| parse (\`nb_nudgespot_parse\`) | $(per "$parse") |"
echo "| commit hand-off (submit + completion wake-up) | $(per "$handoff") |"
echo "| reply (\`commit_cb\`: counters, log, 200 body, send) | $(per "$reply") |"
echo "| of which \`evhttp_send_reply\` | $(per "$send") |"
echo "| of which the log line (\`log_webhook\`) | $(per "$logline") |"
echo "| libevent request parsing and free | $(per "$lp") |"
echo "| bare evhttp, whole request (\`nbbare\`) | $(per "$bare") |"
echo "| committer thread, \`nb_store_append\` per request | $(per "$(incl "${writer:-/dev/null}" nb_store_append)") |"
