#!/usr/bin/env bash
# Stack frame limit for the project's kernel code, the Rust counterpart of the C compiler's
# -Wframe-larger-than (CONFIG_FRAME_WARN, 2048 bytes on 64-bit): rustc has no such warning, and a
# kernel task has 16 KiB of stack for every frame of a syscall, probe or work item together.
#
# usage: framecheck.sh [--limit BYTES] [--top N] OBJECT...
#
# Disassembles each object (llvm-objdump) and adds up every function's stack adjustments
# ("sub sp, sp, #N", "sub sp, sp, #N, lsl #12", "stp x29, x30, [sp, #-N]!"). Prints the N
# largest frames (default 5) and fails, naming each function over the limit (default 2048).
set -euo pipefail
limit=2048 top=5
while [ $# -gt 0 ]; do
    case "$1" in
    --limit) limit=$2; shift 2 ;;
    --top) top=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "framecheck.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: framecheck.sh [--limit BYTES] [--top N] OBJECT..." >&2; exit 2; }
objdump=$(command -v llvm-objdump || command -v llvm-objdump-14 || true)
[ -n "$objdump" ] || { echo "framecheck.sh: llvm-objdump not found" >&2; exit 1; }

frames=$(for obj in "$@"; do
    "$objdump" -d --no-show-raw-insn "$obj" | awk -v obj="${obj##*/}" '
        function flush() { if (fn != "") print total, obj, fn }
        /^[0-9a-f]+ <.*>:$/ { flush(); fn = substr($2, 2, length($2) - 3); total = 0; next }
        /\tsub\tsp, sp, #/ {
            s = $0; sub(/.*\tsub\tsp, sp, #/, "", s)
            n = s; sub(/[^0-9].*/, "", n)
            total += (s ~ /lsl #12/) ? n * 4096 : n; next
        }
        /\tstp\tx29, x30, \[sp, #-[0-9]+\]!/ {
            s = $0; sub(/.*\[sp, #-/, "", s); sub(/\].*/, "", s); total += s
        }
        END { flush() }'
done | sort -rn)
echo "$frames" | sed -n "1,${top}p" | while read -r bytes obj fn; do
    printf 'framecheck: %6d bytes  %s  %s\n' "$bytes" "$obj" "$fn"
done
over=$(echo "$frames" | awk -v limit="$limit" '$1 > limit')
if [ -n "$over" ]; then
    echo "$over" | while read -r bytes obj fn; do
        echo "framecheck: FAILED: $obj: $fn has a $bytes-byte stack frame (limit $limit)" >&2
    done
    exit 1
fi
echo "framecheck: every frame within $limit bytes ($# objects)"
