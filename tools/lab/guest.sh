#!/usr/bin/env bash
# Builds the guest's user-space programs (static aarch64, from the workspace) and the initramfs
# for one kernel flavour: busybox, /init, the project's modules and the programs.
# usage: guest.sh [release|debug|c-smmu|c-smmu-debug]   -> prints the initramfs path
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
. "$here/kenv.sh" "${1:-${FLAVOUR:-release}}"

guest_bins=(labtest mdev-client)
export CARGO_TARGET_DIR=$LAB_CACHE/target-guest
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS='-C target-feature=+crt-static'
pkgs=()
for b in "${guest_bins[@]}"; do pkgs+=(-p "$b"); done
(cd "$LAB_ROOT" && RUSTC=$KRUSTC cargo build -q --release --target aarch64-unknown-linux-gnu "${pkgs[@]}") >&2

root=$LAB_CACHE/initramfs-$FLAVOUR
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,lib/labtest,root}
cp "$LAB_CACHE/busybox/bin/busybox" "$root/bin/busybox"
cp "$here/guest/init" "$root/init"
chmod +x "$root/init"
for b in "${guest_bins[@]}"; do
    cp "$CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/release/$b" "$root/bin/$b"
done
# Project modules (built by modules.sh) and in-tree modules the tests compare against.
mdir=$LAB_CACHE/modules-$FLAVOUR
find "$mdir" -name '*.ko' -exec cp {} "$root/lib/labtest/" \;
find "$KBUILD/samples" -name 'mtty.ko' -exec cp {} "$root/lib/labtest/" \; 2>/dev/null || true
cp "$here/guest/demo.sh" "$root/lib/labtest/"
# labtest runs its user-space benchmarks on the release flavour only.
echo "$FLAVOUR" > "$root/lib/labtest/flavour"
# Expected results per platform (labtest picks the one lab.platform= names).
mkdir -p "$root/lib/labtest/expected"
cp "$here"/expected/*.list "$root/lib/labtest/expected/"
# The guest's modules.list for this flavour (checked against tests/kernel/Kbuild).
"$here/modlist.sh" "$FLAVOUR" > "$root/lib/labtest/modules.list"
while read -r m _; do
    [ -f "$root/lib/labtest/$m.ko" ] || { echo "guest.sh: test module $m.ko was not built" >&2; exit 1; }
done < "$root/lib/labtest/modules.list"
# The VMs of the vm:* tests (docs/vm-guests.md) boot this same kernel with a small initramfs:
# busybox, vm-init and the copy engine's guest driver.
vmroot=$LAB_CACHE/vm-initramfs-$FLAVOUR
rm -rf "$vmroot"
mkdir -p "$vmroot"/{bin,dev,proc,sys} "$root/lib/vm"
cp "$LAB_CACHE/busybox/bin/busybox" "$vmroot/bin/"
cp "$here/guest/vm-init" "$vmroot/init"
chmod +x "$vmroot/init"
cp "$mdir/samples/copy-engine-guest/copy_engine_guest.ko" "$vmroot/"
(cd "$vmroot" && find . | cpio -o -H newc --quiet | gzip -1) > "$root/lib/vm/initrd.gz"
cp "$KBUILD/arch/arm64/boot/Image" "$root/lib/vm/Image"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$LAB_CACHE/initramfs-$FLAVOUR.cpio.gz"
echo "$LAB_CACHE/initramfs-$FLAVOUR.cpio.gz"
