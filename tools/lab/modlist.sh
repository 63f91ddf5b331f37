#!/usr/bin/env bash
# Prints the guest's modules.list for one kernel flavour ("<module> [bench] [platform=NAME]", in
# load order) from tools/lab/guest/modules.list, after checking that list against
# tests/kernel/Kbuild: every test module built must be listed or excluded with a reason
# ("exclude <module> <reason>"), every listed module must be built, and the list must exist.
# A module that is built but in no list would otherwise never run, and nothing would say so.
# usage: modlist.sh release|debug|c-smmu|c-smmu-debug
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
flavour=${1:?usage: modlist.sh FLAVOUR}
list=${LAB_MODULES_LIST:-$here/guest/modules.list}
kbuild_file=$root/tests/kernel/Kbuild
die() { echo "modlist.sh: $*" >&2; exit 1; }
[ -f "$list" ] || die "$list is missing: no test module would run"
mapfile -t kbuild < <(sed -nE 's/^obj-m[[:space:]]*\+=[[:space:]]*([A-Za-z0-9_]+)\.o.*/\1/p' "$kbuild_file")
[ ${#kbuild[@]} -gt 0 ] || die "$kbuild_file builds no module"
declare -A seen=()
bad=0
problem() { echo "modlist.sh: $*" >&2; bad=1; }
while read -r m rest; do
    case "$m" in ''|'#'*) continue ;; esac
    if [ "$m" = exclude ]; then
        read -r m reason <<<"$rest"
        [ -n "${reason:-}" ] || problem "'exclude $m' has no reason"
    fi
    [ -z "${seen[$m]:-}" ] || problem "$m appears twice in $list"
    seen[$m]=1
    [[ " ${kbuild[*]} " == *" $m "* ]] || problem "$list names $m, which $kbuild_file does not build"
done < "$list"
for m in "${kbuild[@]}"; do
    [ -n "${seen[$m]:-}" ] ||
        problem "$kbuild_file builds $m, which $list neither lists nor excludes (add '$m' or 'exclude $m <reason>')"
done
[ $bad = 0 ] || exit 1
while read -r m rest; do
    case "$m" in ''|'#'*|exclude) continue ;; esac
    flavours=() bench="" platform=""
    for w in $rest; do
        case "$w" in
        bench) bench=" bench" ;;
        release|debug|c-smmu|c-smmu-debug) flavours+=("$w") ;;
        rust-smmu|rust-smmu-debug) die "$m: flavour '$w' is gone (the Rust SMMUv3 driver is now release/debug; the C driver c-smmu/c-smmu-debug)" ;;
        platform=?*) [ -f "$here/expected/${w#platform=}.list" ] ||
                         die "$m: $w names a platform with no tools/lab/expected/${w#platform=}.list"
                     platform=" $w" ;;
        *) die "$m: unknown word '$w' (want a flavour, bench or platform=NAME)" ;;
        esac
    done
    [ ${#flavours[@]} = 0 ] || [[ " ${flavours[*]} " == *" $flavour "* ]] || continue
    echo "$m$bench$platform"
done < "$list"
