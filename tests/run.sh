#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# The one test command: installs what the build and the tests need (Debian
# 12, as root), builds with warnings as errors and runs every test (unit,
# fuzz corpus replay, integration), builds again with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs every test again, then checks that the
# C sources are clang-formatted.  Exits non-zero on the first failure.
#
#   sudo ./tests/run.sh            # from the repository root or anywhere
#
# Environment: JOBS (parallel build jobs, default: number of CPUs),
# NB_TEST_JOBS (tests run at once, default 4: the integration tests mostly
# wait on timers and sockets, and each has its own ports, folders and
# PostgreSQL schema, so four share two cores without stepping on each
# other; 1 runs them one by one),
# NB_SKIP_ASAN=1 skips the sanitizer pass (faster local runs; CI never sets it),
# NB_BUILD_DIR / NB_ASAN_BUILD_DIR rename build/ and build-asan/.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

packages=(build-essential cmake pkg-config libevent-dev libsodium-dev
	libjansson-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev libcmocka-dev
	libpq-dev zlib1g-dev postgresql python3 python3-cryptography clang-format
	curl ca-certificates git openssl chromium nodejs prometheus)
# Debian's nodejs needs the separate npm package; a Node.js that already
# bundles npm (NodeSource's) conflicts with it, so ask only when missing.
command -v npm >/dev/null 2>&1 || packages+=(npm)

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		fail "missing packages (${missing[*]}); run as root to install them"
	fi
	step "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${packages[@]}"
else
	step "all ${#packages[@]} packages present"
fi

jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
bdir=${NB_BUILD_DIR:-build}
adir=${NB_ASAN_BUILD_DIR:-build-asan}

# A throw-away PostgreSQL cluster for the postgres store tests (unit and
# integration); they skip themselves without NB_TEST_PG_DSN.
if [ -z "${NB_TEST_PG_DSN:-}" ] && [ -f tests/pg.sh ]; then
	step "starting a throw-away PostgreSQL (tests/pg.sh)"
	# A state file of our own: never reuse (or stop) someone else's cluster.
	NB_PG_STATE=$(mktemp -u "${TMPDIR:-/tmp}/nb-run-pg.XXXXXX")
	export NB_PG_STATE
	pgenv=$(bash tests/pg.sh) || fail "tests/pg.sh could not start PostgreSQL"
	eval "$pgenv"
	trap 'bash tests/pg.sh stop || true' EXIT
fi

# Every option the passes depend on is given explicitly: a build folder
# configured by someone else (deploy/quickstart.sh leaves build/ with
# NB_TESTS=OFF and a Release build type) must not make a pass skip tests,
# and ctest fails when it finds none (--no-tests=error).
step "build (warnings are errors) in $bdir/"
cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNB_WERROR=ON \
    -DNB_TESTS=ON -DNB_SANITIZE=OFF -DNB_LIB_ONLY= -DNB_UNIT_ONLY= \
    >/dev/null || fail "cmake configure ($bdir/)"
cmake --build "$bdir" -j "$jobs" || fail "build ($bdir/)"

step "tests in $bdir/"
tjobs=${NB_TEST_JOBS:-4}
(cd "$bdir" && ctest --output-on-failure --no-tests=error -j "$tjobs") ||
    fail "tests ($bdir/)"

if [ "${NB_SKIP_ASAN:-0}" != 1 ]; then
	step "build with ASan+UBSan in $adir/"
	cmake -S . -B "$adir" -DCMAKE_BUILD_TYPE=Debug -DNB_WERROR=ON \
	    -DNB_TESTS=ON -DNB_SANITIZE=ON -DNB_LIB_ONLY= -DNB_UNIT_ONLY= \
	    >/dev/null || fail "cmake configure ($adir/)"
	cmake --build "$adir" -j "$jobs" || fail "build ($adir/)"
	step "tests in $adir/"
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	(cd "$adir" && ctest --output-on-failure --no-tests=error -j "$tjobs") ||
	    fail "tests under sanitizers ($adir/)"
fi

step "clang-format check"
mapfile -t cfiles < <(find src include tests -name '*.[ch]' -type f | sort)
bad=()
for f in "${cfiles[@]}"; do
	clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ "${#bad[@]}" -gt 0 ]; then
	printf '  not formatted: %s\n' "${bad[@]}" >&2
	fail "clang-format (run: clang-format -i ${bad[*]})"
fi

printf '\nPASS: build, tests, sanitizer tests and format check all passed.\n'
