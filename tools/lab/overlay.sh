#!/usr/bin/env bash
# Applies the project's rust/ overlay to a kernel source tree, idempotently and without touching
# files that did not change (so the kernel build stays incremental):
#  - rust/kernel/**, rust/helpers/** are copied (files named *.append.* excepted);
#  - rust/kernel/lib.append.rs, rust/bindings/bindings_helper.append.h and
#    rust/helpers/helpers.append.c are appended to the pristine lib.rs, bindings_helper.h and
#    helpers.c;
#  - portable crates are linked into rust/kernel/portable/ so the kernel crate compiles the very
#    same files as `cargo test` (see docs/portable-code.md).
# Files an earlier overlay added and that are gone from the repo are removed again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
ksrc=$1
overlay=$LAB_ROOT/rust
manifest=$ksrc/.lab-overlay-manifest

install_if_changed() { # src dst
    if ! cmp -s "$1" "$2"; then mkdir -p "$(dirname "$2")"; cp "$1" "$2"; echo "  overlay: ${2#"$ksrc"/}"; fi
}

new_manifest=$(mktemp)
if [ -d "$overlay" ]; then
    while IFS= read -r f; do
        rel=${f#"$overlay"/}
        install_if_changed "$f" "$ksrc/rust/$rel"
        echo "rust/$rel" >> "$new_manifest"
    done < <(find "$overlay/kernel" "$overlay/helpers" -type f ! -name '*.append.*' 2>/dev/null | sort)
fi

append() { # pristine-file overlay-part
    local target=$ksrc/$1 part=$overlay/$2
    [ -f "$target.lab-orig" ] || cp "$target" "$target.lab-orig"
    local tmp
    tmp=$(mktemp)
    cat "$target.lab-orig" > "$tmp"
    [ -f "$part" ] && { printf '\n// --- project overlay (%s) ---\n' "$2"; cat "$part"; } >> "$tmp"
    install_if_changed "$tmp" "$target"
    rm -f "$tmp"
}
append rust/kernel/lib.rs kernel/lib.append.rs
append rust/bindings/bindings_helper.h bindings/bindings_helper.append.h
append rust/helpers/helpers.c helpers/helpers.append.c

# Portable code compiled into the kernel crate: rust/kernel/portable/<name> -> <dir in the repo>.
mkdir -p "$ksrc/rust/kernel/portable"
for link in ioasid=ioasid/src/ioasid auxpolicy=drivers/auxdomain/src/auxdomain/policy; do
    name=${link%%=*} src=$LAB_ROOT/${link#*=}
    [ -d "$src" ] || continue
    if [ "$(readlink "$ksrc/rust/kernel/portable/$name" 2>/dev/null)" != "$src" ]; then
        ln -sfn "$src" "$ksrc/rust/kernel/portable/$name"
        echo "  overlay: rust/kernel/portable/$name -> $src"
    fi
done

if [ -f "$manifest" ]; then
    comm -23 <(sort "$manifest") <(sort "$new_manifest") | while IFS= read -r gone; do
        rm -f "$ksrc/$gone"; echo "  overlay: removed $gone"
    done
fi
mv "$new_manifest" "$manifest"
