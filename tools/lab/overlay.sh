#!/usr/bin/env bash
# Applies the project's rust/ overlay to a kernel source tree, idempotently and without touching
# files that did not change (so the kernel build stays incremental):
#  - rust/kernel/**, rust/helpers/** are copied (files named *.append.* excepted); a file the
#    kernel ships too (rust/kernel/device.rs) is saved as <file>.lab-orig first and restored
#    when the overlay drops it;
#  - rust/kernel/lib.append.rs, rust/bindings/bindings_helper.append.h and
#    rust/helpers/helpers.append.c are appended to the pristine lib.rs, bindings_helper.h and
#    helpers.c;
#  - portable crates are linked into rust/kernel/portable/ so the kernel crate compiles the very
#    same files as `cargo test` (see docs/portable-code.md);
#  - in-tree (built-in capable) drivers are copied into their kernel directory, with their
#    portable core linked next to them, and the parent Kconfig/Makefile get a `source`/`obj-`
#    line (see docs/rust-smmuv3.md).
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
        # A file 6.12 ships too (rust/kernel/device.rs): keep the pristine one to restore.
        if [ -f "$ksrc/rust/$rel" ] && [ ! -f "$ksrc/rust/$rel.lab-orig" ] \
            && ! grep -qxF "rust/$rel" "$manifest" 2>/dev/null; then
            cp "$ksrc/rust/$rel" "$ksrc/rust/$rel.lab-orig"
        fi
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

# In-tree drivers: <repo dir>=<kernel dir>=<portable core linked as <kernel dir>/<name>>.
append_lines() { # pristine-file lines...
    local target=$ksrc/$1 tmp
    shift
    [ -f "$target.lab-orig" ] || cp "$target" "$target.lab-orig"
    tmp=$(mktemp)
    { cat "$target.lab-orig"; printf '\n# --- project overlay ---\n'; printf '%s\n' "$@"; } > "$tmp"
    install_if_changed "$tmp" "$target"
    rm -f "$tmp"
}
for drv in drivers/smmuv3/linux=drivers/iommu/arm/rust-smmuv3=smmuv3core=drivers/smmuv3/src/smmuv3; do
    IFS== read -r src dst core_name core_src <<< "$drv"
    [ -d "$LAB_ROOT/$src" ] || continue
    for f in "$LAB_ROOT/$src"/*; do
        install_if_changed "$f" "$ksrc/$dst/${f##*/}"
        echo "$dst/${f##*/}" >> "$new_manifest"
    done
    if [ "$(readlink "$ksrc/$dst/$core_name" 2>/dev/null)" != "$LAB_ROOT/$core_src" ]; then
        ln -sfn "$LAB_ROOT/$core_src" "$ksrc/$dst/$core_name"
        echo "  overlay: $dst/$core_name -> $LAB_ROOT/$core_src"
    fi
done
append_lines drivers/iommu/Kconfig 'source "drivers/iommu/arm/rust-smmuv3/Kconfig"'
append_lines drivers/iommu/Makefile 'obj-$(CONFIG_ARM_SMMU_V3_RUST) += arm/rust-smmuv3/'

# Portable code compiled into the kernel crate: rust/kernel/portable/<name> -> <dir in the repo>.
mkdir -p "$ksrc/rust/kernel/portable"
for link in ioasid=ioasid/src/ioasid auxpolicy=drivers/auxdomain/src/auxdomain/policy prot=drivers/smmuv3/src/smmuv3/prot; do
    name=${link%%=*} src=$LAB_ROOT/${link#*=}
    [ -d "$src" ] || continue
    if [ "$(readlink "$ksrc/rust/kernel/portable/$name" 2>/dev/null)" != "$src" ]; then
        ln -sfn "$src" "$ksrc/rust/kernel/portable/$name"
        echo "  overlay: rust/kernel/portable/$name -> $src"
    fi
done

if [ -f "$manifest" ]; then
    comm -23 <(sort "$manifest") <(sort "$new_manifest") | while IFS= read -r gone; do
        if [ -f "$ksrc/$gone.lab-orig" ]; then
            cp "$ksrc/$gone.lab-orig" "$ksrc/$gone"; echo "  overlay: restored pristine $gone"
        else
            rm -f "$ksrc/$gone"; echo "  overlay: removed $gone"
        fi
    done
fi
mv "$new_manifest" "$manifest"
