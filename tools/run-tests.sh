#!/bin/bash
# Runs every build/<variant>/tests/test_* from the repo root and totals Check's test cases.
# Usage: [TESTS="test_a test_b"] tools/run-tests.sh BUILD_ROOT... (e.g. build build/asan).
# With TESTS (the Makefile passes the names of tests/test_*.c) a missing executable is a failure;
# without it, whatever ROOT/tests/test_* holds is run. Exit 1 if anything failed.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1

export CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-20}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
# A hung executable must not stall the run: hard limit per executable, in seconds.
limit="${TEST_TIMEOUT:-600}"

total_pass=0
total_fail=0
for root in "$@"; do
    pass=0
    fail=0
    count=0
    if [ -n "${TESTS:-}" ]; then
        exes=()
        for name in $TESTS; do exes+=("$root/tests/$name"); done
    else
        exes=("$root"/tests/test_*)
    fi
    for exe in "${exes[@]}"; do
        case "$exe" in *.d | *.o | *.log) continue ;; esac
        if [ -z "${TESTS:-}" ] && [ ! -f "$exe" ]; then
            continue # the glob matched nothing
        fi
        count=$((count + 1))
        if [ ! -x "$exe" ]; then
            echo "FAIL $exe: not built"
            fail=$((fail + 1))
            continue
        fi
        log="$exe.log"
        AGW_BIN="$root/ims-agw" timeout -k 10 "$limit" "$exe" >"$log" 2>&1
        rc=$?
        # Check prints "NN%: Checks: X, Failures: Y, Errors: Z" once per srunner.
        read -r checks failures errors < <(sed -n -E \
            's/^[0-9]+%: Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/p' "$log" |
            awk '{c += $1; f += $2; e += $3} END {print c + 0, f + 0, e + 0}')
        bad=$((failures + errors))
        ok=$((checks - bad))
        if [ "$checks" -eq 0 ] && [ "$rc" -eq 0 ]; then
            ok=1 # not a Check runner: the executable is the test case
        fi
        if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
            bad=1 # crashed, timed out, leaked or exited non-zero outside Check's counts
        fi
        pass=$((pass + ok))
        fail=$((fail + bad))
        if [ "$rc" -eq 0 ] && [ "$bad" -eq 0 ]; then
            echo "PASS $exe: $ok"
        else
            echo "---- $exe (exit $rc) ----"
            tail -n 80 "$log"
            echo "FAIL $exe: $ok passed, $bad failed (exit $rc, log $log)"
        fi
    done
    if [ "$count" -eq 0 ]; then
        echo "FAIL $root: no test executables in $root/tests"
        fail=$((fail + 1))
    fi
    echo "== $root: $pass test cases passed, $fail failed, $count executables"
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + fail))
done

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
