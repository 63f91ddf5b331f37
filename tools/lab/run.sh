#!/usr/bin/env bash
# Boots the lab guest in QEMU (arm64 virt, SMMUv3, GICv3, edu, no network) and judges the run.
#
# usage: run.sh test|demo|shell [--flavour release|debug] [--filter NAME] [--gdb] [--timeout S] [--vm]
#
# test:  runs labtest in the guest; fails unless the guest printed a closing
#        "N passed, 0 failed" line with N > 0, and the kernel log is free of oops, BUG, WARN,
#        KASAN, lockdep, kmemleak or panic reports; a hang is cut off after the timeout.
# demo:  runs the guest demo script with the same log checks.
# shell: interactive shell on the serial console (Ctrl-A X quits QEMU).
# --gdb: QEMU waits for gdb on tcp::1234 (see docs/lab.md).
# --vm:  the guest can run VMs (docs/vm-guests.md): it boots at EL2 (virtualization=on, KVM) with
#        the VMM disk (vmm.sh) attached; implied by test and demo runs on the release kernel
#        and by a filter starting with "vm:".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
mode=${1:-}; shift || true
flavour=release filter="" gdb=0 timeout="" vm=0
while [ $# -gt 0 ]; do
    case "$1" in
    --flavour) flavour=$2; shift 2 ;;
    --filter) filter=$2; shift 2 ;;
    --gdb) gdb=1; shift ;;
    --timeout) timeout=$2; shift 2 ;;
    --vm) vm=1; shift ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$mode" in test|demo|shell) ;; *) echo "usage: run.sh test|demo|shell [options]" >&2; exit 2 ;; esac
. "$here/kenv.sh" "$flavour"

image=$KBUILD/arch/arm64/boot/Image
[ -f "$image" ] || { echo "run.sh: no kernel at $image: run tools/lab/kernel.sh $flavour" >&2; exit 1; }
initrd=$("$here/guest.sh" "$flavour")
mem=1G
[ "$flavour" = debug ] && mem=2G
append="console=ttyAMA0 panic=-1 lab.mode=$mode"
[ -n "$filter" ] && append+=" lab.filter=$filter"
qemu=(qemu-system-aarch64 -machine virt,iommu=smmuv3,gic-version=3 -cpu max -smp 2 -m "$mem"
      -nodefaults -no-reboot -kernel "$image" -initrd "$initrd" -append "$append" -device edu)
[ $gdb = 1 ] && qemu+=(-s -S)
# Release test and demo runs include the VMs: EL2 costs nothing measurable (docs/lab.md).
[[ "$filter" == vm:* ]] && vm=1
[ "$mode" != shell ] && [ "$flavour" = release ] && vm=1
if [ $vm = 1 ]; then
    qemu[2]+=,virtualization=on
    qemu+=(-drive "file=$("$here/vmm.sh"),if=none,id=vmm,format=raw,readonly=on" -device virtio-blk-device,drive=vmm)
fi

if [ "$mode" = shell ]; then
    exec "${qemu[@]}" -nographic -serial mon:stdio
fi

log=$LAB_CACHE/last-$mode-$flavour.log
: "${timeout:=$([ "$flavour" = debug ] && echo 1500 || echo 600)}"
echo "[run] $mode on the $flavour kernel (log: $log, timeout ${timeout}s)"
set +e
timeout --foreground -k 5 "$timeout" "${qemu[@]}" -display none -serial stdio < /dev/null 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
exec "$here/judge.sh" "$mode" "$log" "$status"
