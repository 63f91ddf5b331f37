#!/usr/bin/env bash
# Compares the two SMMUv3 drivers' figures: boots the kernels of two flavours alternately
# (A B A B ..., so that host load drifts hit both), each with labtest filtered to the driver
# benchmarks, collects the `BENCH ... driver=<c|rust> key=<number> ...` lines (smmu_bench's
# times and command counts, bench:smmu_probe_time, bench:mdev_pasid_vs_mediated's commands per
# piece), and prints for every figure the median over the boots of each driver and the ratio
# Rust / C. The driver comes from the figure lines (the guest reads it from the kernel it
# runs), not from the flavour names, so any two flavours with different SMMUv3 drivers do.
#
# usage: compare-drivers.sh [--rounds N] [--platform P] [--filter F] FLAVOUR_A FLAVOUR_B
#   --rounds N   boots of each flavour (default 3)
#   --platform   run.sh platform (default pasid: both drivers' PASID paths run there)
#   --filter F   labtest filter of each boot (default smmu: smmu_bench, smmu_cmdq and
#                bench:smmu_probe_time; bench:mdev_pasid for the commands per piece)
# The raw figure lines stay in $LAB_CACHE/compare-drivers/ (one file per boot).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
rounds=3 platform=pasid filter=smmu
flavours=()
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --platform) platform=$2; shift 2 ;;
    --filter) filter=$2; shift 2 ;;
    -*) echo "compare-drivers.sh: unknown option $1" >&2; exit 2 ;;
    *) flavours+=("$1"); shift ;;
    esac
done
[ ${#flavours[@]} = 2 ] || { echo "usage: compare-drivers.sh [--rounds N] [--platform P] [--filter F] FLAVOUR_A FLAVOUR_B" >&2; exit 2; }
out=$LAB_CACHE/compare-drivers
mkdir -p "$out"
rm -f "$out"/boot-*.txt
for r in $(seq 1 "$rounds"); do
    for f in "${flavours[@]}"; do
        log=$out/boot-$r-$f.log
        echo "compare-drivers.sh: round $r/$rounds: $f ($platform, filter $filter)"
        if ! "$here/run.sh" test --flavour "$f" --platform "$platform" --filter "$filter" > "$log" 2>&1; then
            echo "compare-drivers.sh: the $f run failed (log: $log):" >&2
            grep -E '^(FAIL|\[judge\])' "$log" >&2 || tail -20 "$log" >&2
            exit 1
        fi
        tr -d '\r' < "$log" | grep -E '^BENCH .*driver=' > "$out/boot-$r-$f.txt" || true
    done
done
# One "figure driver value" line per number, then the median of each (figure, driver).
cat "$out"/boot-*.txt | awk '
{
    name = $2; sub(/:$/, "", name); drv = ""
    for (i = 3; i <= NF; i++) if ($i ~ /^driver=/) { drv = substr($i, 8); break }
    for (j = i + 1; j <= NF; j++) {
        n = split($j, kv, "=")
        if (n == 2 && kv[2] ~ /^[0-9]+(\.[0-9]+)?$/) print name "." kv[1], drv, kv[2]
    }
}' | sort -k1,1 -k2,2 -k3,3g | awk '
function flush() {
    if (key == "") return
    m = (cnt % 2) ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
    med[key] = m; num[key] = cnt
}
{
    k = $1 SUBSEP $2
    if (k != key) { flush(); key = k; cnt = 0 }
    v[++cnt] = $3
    figs[$1] = 1
}
END {
    flush()
    printf "%-44s %14s %14s %8s\n", "figure (median over boots)", "C", "Rust", "Rust/C"
    nf = 0
    for (f in figs) order[++nf] = f
    for (i = 2; i <= nf; i++) { t = order[i]; for (j = i - 1; j >= 1 && order[j] > t; j--) order[j + 1] = order[j]; order[j + 1] = t }
    for (i = 1; i <= nf; i++) {
        f = order[i]; c = f SUBSEP "c"; r = f SUBSEP "rust"
        cs = (c in med) ? sprintf("%g (%d)", med[c], num[c]) : "-"
        rs = (r in med) ? sprintf("%g (%d)", med[r], num[r]) : "-"
        ratio = (c in med && r in med && med[c] > 0) ? sprintf("%.2f", med[r] / med[c]) : ((c in med && r in med && med[c] == med[r]) ? "=" : "-")
        printf "%-44s %14s %14s %8s\n", f, cs, rs, ratio
    }
}'
echo "(in parentheses: the number of boots; figure lines in $out)"
