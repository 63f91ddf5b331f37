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
#  - in-tree (built-in capable) drivers are copied into their kernel directory and the parent
#    Kconfig/Makefile get a `source`/`obj-` line (see docs/rust-smmuv3.md); the portable core
#    they use is the kernel crate's (`kernel::smmuv3`, linked below).
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
# Items later mainline has in files 6.12 already ships: `Opaque::try_ffi_init` (types.rs) and the
# `sync::rcu` module (sync.rs), appended so the rest of those files stays 6.12's own.
append rust/kernel/types.rs kernel/types.append.rs
append rust/kernel/sync.rs kernel/sync.append.rs

# In-tree drivers: <repo dir>=<kernel dir>.
append_lines() { # pristine-file lines...
    local target=$ksrc/$1 tmp
    shift
    [ -f "$target.lab-orig" ] || cp "$target" "$target.lab-orig"
    tmp=$(mktemp)
    { cat "$target.lab-orig"; printf '\n# --- project overlay ---\n'; printf '%s\n' "$@"; } > "$tmp"
    install_if_changed "$tmp" "$target"
    rm -f "$tmp"
}
for drv in drivers/smmuv3/linux=drivers/iommu/arm/rust-smmuv3; do
    IFS== read -r src dst <<< "$drv"
    [ -d "$LAB_ROOT/$src" ] || continue
    for f in "$LAB_ROOT/$src"/*; do
        install_if_changed "$f" "$ksrc/$dst/${f##*/}"
        echo "$dst/${f##*/}" >> "$new_manifest"
    done
done
# The driver's own link to the core, from before the kernel crate compiled it once.
if [ -L "$ksrc/drivers/iommu/arm/rust-smmuv3/smmuv3core" ]; then
    rm -f "$ksrc/drivers/iommu/arm/rust-smmuv3/smmuv3core"
    echo "  overlay: removed drivers/iommu/arm/rust-smmuv3/smmuv3core"
fi
append_lines drivers/iommu/Kconfig 'source "drivers/iommu/arm/rust-smmuv3/Kconfig"'
append_lines drivers/iommu/Makefile 'obj-$(CONFIG_ARM_SMMU_V3_RUST) += arm/rust-smmuv3/'

# Portable code compiled into the kernel crate: rust/kernel/portable/<name> -> <dir in the repo>.
# Links of names no longer listed (`prot`: now part of `smmuv3`) are removed.
mkdir -p "$ksrc/rust/kernel/portable"
links=(ioasid=ioasid/src/ioasid auxpolicy=drivers/auxdomain/src/auxdomain/policy smmuv3=drivers/smmuv3/src/smmuv3)
for old in "$ksrc"/rust/kernel/portable/*; do
    [ -L "$old" ] || continue
    case " ${links[*]%%=*} " in *" ${old##*/} "*) ;; *) rm -f "$old"; echo "  overlay: removed rust/kernel/portable/${old##*/}" ;; esac
done
for link in "${links[@]}"; do
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
