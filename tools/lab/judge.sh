#!/usr/bin/env bash
# Judges a guest console log. usage: judge.sh test|demo LOG QEMU_EXIT_STATUS
# Exit 0 only if QEMU ended by itself, the kernel reported no oops/BUG/WARN/KASAN/lockdep/
# kmemleak/panic, and (test mode) labtest closed with "N passed, 0 failed, N skipped", N > 0
# (labtest itself fails a full run whose results differ from the expected ones).
set -uo pipefail
mode=$1 log=$2 status=$3
fail=0
problem() { echo "[judge] FAILED: $*"; fail=1; }

[ -f "$log" ] || { problem "no log at $log"; exit 1; }
[ "$status" = 124 ] || [ "$status" = 137 ] && problem "guest timed out (hang)"
[ "$status" = 0 ] || [ "$status" = 124 ] || [ "$status" = 137 ] || problem "qemu exited with $status"

# Kernel reports that fail any run. Each pattern is anchored on the kernel's own wording.
patterns=(
    'Oops'                          # oops
    'BUG: '                         # BUG(), sleeping in atomic, KASAN header ...
    'kernel BUG at'
    '------------\[ cut here \]------------'   # WARN and BUG splats
    'WARNING: CPU: [0-9]+ PID'      # WARN
    'KASAN: '
    'UBSAN: '
    'possible circular locking dependency'
    'possible recursive locking'
    'inconsistent lock state'
    'suspicious RCU usage'
    'lockdep: '                     # includes "turning off the locking correctness validator"
    'INFO: task .* blocked for more than'
    'kmemleak: [0-9]+ new suspected memory leaks'
    'unreferenced object 0x'
    'Kernel panic'
    'Unable to handle kernel'
    'Internal error:'
    'rcu: INFO: rcu_.* detected stalls'
    'ODEBUG: '                      # debug objects (timers, work, RCU heads)
)
for p in "${patterns[@]}"; do
    hits=$(grep -E -c -- "$p" "$log")
    [ "$hits" -gt 0 ] && problem "kernel log matches '$p' ($hits times): $(grep -E -m1 -- "$p" "$log")"
done

if [ "$mode" = test ]; then
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$log" | tail -1)
    if [ -z "$summary" ]; then
        problem "no closing 'N passed, N failed, N skipped' line from labtest (missing result)"
    else
        passed=${summary%% passed*}
        failed=$(echo "$summary" | sed -E 's/.* ([0-9]+) failed.*/\1/')
        [ "$failed" = 0 ] || problem "$failed guest test(s) failed: $(grep -E '^FAIL ' "$log" | tr '\n' ';')"
        skips=$(grep -E '^SKIP ' "$log" | tr '\n' ';')
        [ -z "$skips" ] || echo "[judge] skipped (with their reasons): $skips"
        # A run of benchmarks only (--filter bench:) passes no test but must produce figures.
        benches=$(sed -nE 's/^labtest: benchmarks: ([0-9]+) produced.*/\1/p' "$log" | tail -1)
        [ "$passed" -gt 0 ] || [ "${benches:-0}" -gt 0 ] || problem "guest ran no test and no benchmark"
        echo "[judge] guest: $summary"
    fi
fi
if [ $fail = 0 ]; then echo "[judge] $mode run clean"; fi
exit $fail
