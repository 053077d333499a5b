#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# Builds one fuzz target (tests/fuzz/fuzz_TARGET.c) with clang's libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer against the library
# sources (src/*.c but main.c, as one static archive, so the target links
# only the modules it uses; a module that does not compile stand-alone, such
# as console.c with its generated include, is skipped with a note;
# NB_FUZZ_MODULES="sig log ..." names the modules instead) and runs it for
# SECONDS.
#
#   tests/fuzz/run-libfuzzer.sh sig 120
#   tests/fuzz/run-libfuzzer.sh nudgespot 120 -jobs=2 -workers=2
#
# Arguments after SECONDS go to libFuzzer as they are.  The checked-in
# corpus tests/fuzz/corpus/TARGET/ seeds the run but is never written to:
# the inputs libFuzzer finds go to a working corpus under the output folder
# (NB_FUZZ_DIR, default build-libfuzzer/ at the repository root), crashes,
# leaks, timeouts and out-of-memory inputs to OUT/artifacts-TARGET/.  At the
# end the working corpus is merged (coverage-minimised) into
# OUT/new-TARGET/, which holds only the inputs that add coverage over the
# checked-in corpus: copy the interesting ones (and every crash input, once
# its bug is fixed) into tests/fuzz/corpus/TARGET/ so ctest replays them on
# every build.  Exit status: 0 when the run found nothing, 1 when libFuzzer
# stopped on a finding (the artifact path is printed), 2 on usage or build
# errors.  Environment: CC (default clang), NB_FUZZ_DIR, NB_FUZZ_MODULES.
set -euo pipefail

usage() {
	echo "usage: $0 sig|nudgespot|config|segment SECONDS [libFuzzer flags]" >&2
	exit 2
}
[ $# -ge 2 ] || usage
target=$1
seconds=$2
shift 2
case $seconds in '' | *[!0-9]*) usage ;; esac

top=$(cd "$(dirname "$0")/../.." && pwd)
src=$top/tests/fuzz/fuzz_$target.c
seed=$top/tests/fuzz/corpus/$target
[ -f "$src" ] || { echo "no such target: $src" >&2; exit 2; }
cc=${CC:-clang}
out=${NB_FUZZ_DIR:-$top/build-libfuzzer}
mkdir -p "$out/obj" "$out/corpus-$target" "$out/artifacts-$target"

flags=(-std=c11 -g -O1 -fno-omit-frame-pointer
	-fno-sanitize-recover=undefined
	-D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DNB_VERSION=\"fuzz\"
	-I"$top/include")
pkgs=()
for p in libevent_core libevent_extra libevent_pthreads libevent_openssl \
    openssl jansson libsodium libcurl sqlite3 libpq; do
	pkg-config --exists "$p" && pkgs+=("$p")
done
read -r -a pkgcflags <<<"$(pkg-config --cflags "${pkgs[@]}")"
read -r -a pkglibs <<<"$(pkg-config --libs "${pkgs[@]}")"

# The library, instrumented for coverage but without libFuzzer's main();
# rebuilt only when a source or header is newer than its object.
if [ -n "${NB_FUZZ_MODULES:-}" ]; then
	modules=($NB_FUZZ_MODULES)
else
	modules=()
	for f in "$top"/src/*.c; do
		m=$(basename "$f" .c)
		[ "$m" = main ] || modules+=("$m")
	done
fi
objs=()
for m in "${modules[@]}"; do
	f=$top/src/$m.c
	o=$out/obj/$m.o
	if [ ! -f "$o" ] || [ "$f" -nt "$o" ] ||
	    [ -n "$(find "$top/include" "$top/src" -name '*.h' -newer "$o")" ]; then
		if ! "$cc" "${flags[@]}" "${pkgcflags[@]}" \
		    -fsanitize=fuzzer-no-link,address,undefined \
		    -c "$f" -o "$o" 2>"$out/obj/$m.err"; then
			echo "note: skipping src/$m.c (does not compile" \
			    "stand-alone, see $out/obj/$m.err)" >&2
			rm -f "$o"
			continue
		fi
	fi
	objs+=("$o")
done
rm -f "$out/libnbfuzz.a"
ar rcs "$out/libnbfuzz.a" "${objs[@]}"

bin=$out/fuzz_$target
"$cc" "${flags[@]}" "${pkgcflags[@]}" -fsanitize=fuzzer,address,undefined \
    "$src" "$out/libnbfuzz.a" "${pkglibs[@]}" -lpthread -lm -o "$bin" ||
    exit 2

echo "==> fuzzing $target for ${seconds}s (working corpus $out/corpus-$target)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rc=0
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts-$target/" \
    "$@" "$out/corpus-$target" "$seed" || rc=$?

# What the run added over the checked-in corpus, minimised.
rm -rf "$out/new-$target" "$out/merge-$target"
mkdir -p "$out/new-$target" "$out/merge-$target"
cp "$seed"/* "$out/merge-$target"/ 2>/dev/null || true
before=$(find "$out/merge-$target" -type f | wc -l)
"$bin" -merge=1 -timeout=10 -rss_limit_mb=2048 "$out/merge-$target" \
    "$out/corpus-$target" >/dev/null 2>&1 || true
for f in "$out/merge-$target"/*; do
	[ -e "$seed/$(basename "$f")" ] || cp "$f" "$out/new-$target/"
done
after=$(find "$out/merge-$target" -type f | wc -l)
echo "==> $target: $((after - before)) input(s) add coverage over the" \
    "checked-in corpus ($out/new-$target/)"
found=$(find "$out/artifacts-$target" -type f | wc -l)
echo "==> $target: $found artifact(s) in $out/artifacts-$target/"
if [ "$rc" -ne 0 ]; then
	echo "==> $target: libFuzzer stopped with status $rc" >&2
	exit 1
fi
exit 0
