#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# Runs integration tests with every nudgebridge process (the daemon and the
# command line) under valgrind memcheck, and fails on any memory error or
# definite leak.  Too slow for ctest; run it by hand or in a nightly job.
#
#   tests/valgrind.sh                          # test_ingest and test_delivery
#   tests/valgrind.sh test_operate test_crash  # other modules
#
# The harness starts $NB_BINARY; here that is a small wrapper that execs
# valgrind --error-exitcode=99 --leak-check=full
# --errors-for-leak-kinds=definite on the real binary, with one log file per
# process.  A process that exits normally (SIGTERM, or a command that ends)
# gets a complete report; one the tests kill with SIGKILL only reports the
# errors it met before.  To get as many complete reports as possible, a
# bridge still running at the end of a test is stopped with SIGTERM instead
# of the harness's SIGKILL, and start-up may take 90 s instead of 10
# (faults.patch_for_slow_binary()).  At the end every log is scanned: the script fails
# when a test failed or when any log shows an error or a definite leak, and
# prints those logs.
#
# Environment: NB_BUILD_DIR (default build/; must hold a normal, not a
# sanitizer, build: valgrind and ASan do not mix), NB_VALGRIND_LOGS (keep
# the logs there instead of a temporary folder), VALGRIND (default
# valgrind), NB_VALGRIND_ARGS (more valgrind options).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bdir=${NB_BUILD_DIR:-$top/build}
case $bdir in /*) ;; *) bdir=$top/$bdir ;; esac
real=$bdir/nudgebridge
vg=${VALGRIND:-valgrind}
[ -x "$real" ] || { echo "no binary at $real (build first)" >&2; exit 2; }
command -v "$vg" >/dev/null || { echo "valgrind not found" >&2; exit 2; }

if [ $# -eq 0 ]; then
	set -- test_ingest test_delivery
fi
logs=${NB_VALGRIND_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/nb-valgrind.XXXXXX")}
mkdir -p "$logs"
wrap=$logs/nudgebridge-valgrind
cat >"$wrap" <<EOF
#!/bin/sh
exec "$vg" --error-exitcode=99 --leak-check=full \\
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \\
    --num-callers=30 --log-file="$logs/vg.%p.log" \\
    ${NB_VALGRIND_ARGS:-} "$real" "\$@"
EOF
chmod +x "$wrap"

echo "==> valgrind logs in $logs"
rc=0
for t in "$@"; do
	t=${t%.py}
	echo "==> $t under valgrind"
	# faults.patch_for_slow_binary(): longer start-up wait, and SIGTERM
	# rather than SIGKILL at the end of a test so that leaks get reported.
	(cd "$top/tests/integration" && NB_BINARY=$wrap python3 -c '
import sys, unittest, faults
faults.patch_for_slow_binary()
unittest.main(module=None, argv=["valgrind"] + sys.argv[1:])' -v "$t") ||
	    rc=1
done

# One log per process: errors and definite leaks are failures.
nlogs=0
nbad=0
for f in "$logs"/vg.*.log; do
	[ -e "$f" ] || continue
	nlogs=$((nlogs + 1))
	if grep -Eq 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]' "$f"; then
		nbad=$((nbad + 1))
		echo "---- $f"
		cat "$f"
	fi
done
complete=$(grep -l 'ERROR SUMMARY' "$logs"/vg.*.log 2>/dev/null | wc -l)
echo "==> $nlogs processes ran under valgrind ($complete ran to the end);" \
    "$nbad with errors or definite leaks"
if [ "$nbad" -gt 0 ]; then
	rc=1
fi
if [ "$rc" -eq 0 ] && [ -z "${NB_VALGRIND_LOGS:-}" ]; then
	rm -rf "$logs"
fi
exit "$rc"
