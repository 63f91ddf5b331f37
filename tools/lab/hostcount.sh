#!/usr/bin/env bash
# Counts a `cargo test` log: prints "<passed> <failed> <skipped>". cargo reports a test that
# returned early for want of QEMU (LAB_NO_QEMU=1) as passed; such a test printed one
# "LAB-SKIP <test> ..." line (tools/qtest: require_qemu), so those are taken out of the passes
# and counted as skipped.
# usage: hostcount.sh LOG
set -euo pipefail
log=${1:?usage: hostcount.sh LOG}
sum_of() { grep -E '^test result:' "$log" | sed -nE "s/.* ([0-9]+) $1.*/\1/p" | paste -sd+ | bc; }
passed=$(sum_of passed) failed=$(sum_of failed)
skipped=$(grep -c '^LAB-SKIP ' "$log" || true)
echo "$(( ${passed:-0} - skipped )) ${failed:-0} $skipped"
