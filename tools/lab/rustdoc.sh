#!/usr/bin/env bash
# Builds the rustdoc of the kernel crate with the project's overlay (release tree) and fails on
# any rustdoc warning (broken intra-doc links and the like). Output:
# $LAB_CACHE/build-release/Documentation/output/rust/rustdoc/kernel/index.html
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
. "$here/kenv.sh" release
log=$LAB_CACHE/last-rustdoc.log
kmake rustdoc > "$log" 2>&1 || { cat "$log"; echo "rustdoc.sh: make rustdoc failed" >&2; exit 1; }
if grep -q '^warning' "$log"; then
    grep -A12 '^warning' "$log" | head -60
    echo "rustdoc.sh: $(grep -c '^warning' "$log") rustdoc warnings (full log: $log)" >&2
    exit 1
fi
echo "[rustdoc] kernel crate documented without warnings"
