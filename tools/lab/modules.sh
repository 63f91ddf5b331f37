#!/usr/bin/env bash
# Builds the project's out-of-tree modules (top-level Kbuild) against the lab kernel, warnings as
# errors, and checks their stack frames (framecheck.sh). CLIPPY=1 in the environment runs clippy
# on them too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
. "$here/kenv.sh" "${1:-${FLAVOUR:-release}}"
extra=()
[ "${CLIPPY:-0}" = 1 ] && extra+=(CLIPPY=1)
# Out-of-tree builds write objects next to the sources: build from a copy in the cache so the
# work tree stays clean and two flavours never share objects.
mdir=$LAB_CACHE/modules-$FLAVOUR
mkdir -p "$mdir"
rsync -a --delete --exclude target --exclude .git --exclude '*.o' --exclude '*.ko' \
    --exclude '*.cmd' --exclude '*.mod*' --exclude '.*.d' \
    --filter 'P *.o' --filter 'P *.ko' --filter 'P .*.cmd' --filter 'P *.mod*' --filter 'P .*.d' \
    --filter 'P modules.order' --filter 'P Module.symvers' \
    "$LAB_ROOT"/ "$mdir"/
kmake M="$mdir" KRUSTFLAGS="-Dwarnings" "${extra[@]}" -j"$JOBS" modules
# Objects of modules whose source is gone from the repo must not reach the guest.
find "$mdir" -name '*.ko' | while IFS= read -r ko; do
    src=${ko%.ko}
    [ -f "$src.rs" ] || [ -f "$src.c" ] || { rm -f "$src".*; rm -f "$ko"; }
done
mapfile -t kos < <(find "$mdir" -name '*.ko' | sort)
printf '%s\n' "${kos[@]}"
# Rust has no -Wframe-larger-than: check the frames of the project's modules, of the kernel
# crate with our overlay (a 14 KiB frame in a test module once overflowed the 16 KiB stack) and
# of the project's built-in drivers on the flavours that build them (release and debug build
# the Rust SMMUv3 driver into the Image, so it never shows up as a .ko).
# A flavour whose config enables a driver must have its object (a missing one is an error, not
# a silent pass); an object left over from an earlier config is not part of the Image: skipped.
builtin=()
for drv in CONFIG_ARM_SMMU_V3_RUST=drivers/iommu/arm/rust-smmuv3/arm_smmu_v3_rust.o; do
    opt=${drv%%=*} obj=$KBUILD/${drv#*=}
    grep -q "^$opt=y" "$KBUILD/.config" || continue
    [ -f "$obj" ] || { echo "modules.sh: $opt=y but $obj was not built" >&2; exit 1; }
    builtin+=("$obj")
done
"$here/framecheck.sh" "${kos[@]}" "$KBUILD/rust/kernel.o" "${builtin[@]}" >&2
