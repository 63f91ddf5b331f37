#!/usr/bin/env bash
# Boots the lab guest in QEMU (arm64 virt, SMMUv3, GICv3, edu, no network) and judges the run.
#
# usage: run.sh test|demo|shell [--flavour release|debug|c-smmu|c-smmu-debug]
#               [--platform edu|pasid|pasid-noits] [--filter NAME] [--append KERNEL-ARGS] [--gdb] [--timeout S]
#               [--vm]
#
# test:  runs labtest in the guest; fails unless the guest printed a closing
#        "N passed, 0 failed, N skipped" line with N > 0 (labtest fails a full run whose
#        results differ from tools/lab/expected/<platform>.list), and the kernel log is free
#        of oops, BUG, WARN, KASAN, lockdep, kmemleak or panic reports; a hang is cut off after
#        the timeout.
# demo:  runs the guest demo script with the same log checks.
# shell: interactive shell on the serial console (Ctrl-A X quits QEMU).
# --flavour: the kernel (kenv.sh): release (the default) and debug have the project's Rust SMMUv3
#        driver, c-smmu and c-smmu-debug the C arm-smmu-v3 (the baseline).
# --gdb: QEMU waits for gdb on tcp::1234 (see docs/lab.md).
# --append: extra kernel command-line arguments (e.g. kunit.filter_glob=... to see what a
#        missing KUnit case does to the verdict).
# --platform: the machine (default $LAB_PLATFORM, else pasid for demo and edu otherwise); each platform has its devices below
#        and its expected results in tools/lab/expected/<platform>.list.
#        edu:   the lab QEMU's virt + SMMUv3 (no SubstreamIDs) + edu;
#        pasid: the SMMUv3 gets 20-bit SubstreamIDs (arm-smmuv3.ssidsize=20) and an edu-pasid
#               (docs/pasid-device.md) sits next to edu.
#        pasid-noits: the pasid machine with a GICv2 (MSIs through GICv2m, not isolated).
# --vm:  the guest can run VMs (docs/vm-guests.md): it boots at EL2 (virtualization=on, KVM) with
#        the VMM disk (vmm.sh) attached; implied by test and demo runs on the release kernel
#        and by a filter starting with "vm:".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
mode=${1:-}; shift || true
flavour=release filter="" extra="" gdb=0 timeout="" vm=0 platform=${LAB_PLATFORM:-}
while [ $# -gt 0 ]; do
    case "$1" in
    --flavour) flavour=$2; shift 2 ;;
    --filter) filter=$2; shift 2 ;;
    --platform) platform=$2; shift 2 ;;
    --append) extra=$2; shift 2 ;;
    --gdb) gdb=1; shift ;;
    --timeout) timeout=$2; shift 2 ;;
    --vm) vm=1; shift ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$mode" in test|demo|shell) ;; *) echo "usage: run.sh test|demo|shell [options]" >&2; exit 2 ;; esac
# The demo shows PASID mode: it runs on the PASID platform unless told otherwise.
[ -n "$platform" ] || { [ "$mode" = demo ] && platform=pasid || platform=edu; }
. "$here/kenv.sh" "$flavour"

# The log of this run: removed first, so that nothing reads a previous run's log when this
# one fails before booting.
log=$LAB_CACHE/last-$mode-$flavour.log
[ "$platform" = edu ] || log=$LAB_CACHE/last-$mode-$flavour-$platform.log
rm -f "$log"
image=$KBUILD/arch/arm64/boot/Image
[ -f "$image" ] || { echo "run.sh: no kernel at $image: run tools/lab/kernel.sh $flavour" >&2; exit 1; }
initrd=$("$here/guest.sh" "$flavour")
mem=1G
machine=virt,iommu=smmuv3,gic-version=3
case "$flavour" in *debug) mem=2G ;; esac
case "$platform" in
edu) devices=(-device edu) ;;
pasid) devices=(-global arm-smmuv3.ssidsize=20 -device edu -device edu-pasid) ;;
# The PASID machine without GICv3's ITS: a GICv2 whose v2m frame takes the PCI MSIs without
# telling devices apart (not isolated), so the sample refuses to open mdevs in PASID mode
# (mdev:pasid_msi_isolation_at_open). GICv3 with its=off leaves no MSI controller at all, and
# QEMU's edu refuses to start without one ("MSI is not supported by interrupt controller").
pasid-noits) devices=(-global arm-smmuv3.ssidsize=20 -device edu -device edu-pasid) machine=virt,iommu=smmuv3,gic-version=2 ;;
*) echo "run.sh: unknown platform '$platform' (add its devices here and tools/lab/expected/$platform.list)" >&2; exit 2 ;;
esac
[ -f "$here/expected/$platform.list" ] ||
    { echo "run.sh: no expected results for platform $platform (tools/lab/expected/$platform.list)" >&2; exit 2; }
# log_buf_len: the default 128 KiB ring can wrap during a KUnit-heavy boot before labtest reads
# it (labtest fails the run on lost records, tools/guest/labtest/src/kmsg.rs).
append="console=ttyAMA0 panic=-1 log_buf_len=4M lab.mode=$mode lab.platform=$platform"
# initcall_debug: the driver core then logs "probe of <dev> returned <r> after <n> usecs" for
# every probe (at KERN_DEBUG: not on the console), which bench:smmu_probe_time reads for the
# SMMU whichever driver binds it.
append+=" initcall_debug"
[ -n "$filter" ] && append+=" lab.filter=$filter"
[ -n "$extra" ] && append+=" $extra"
[ -x "$LAB_QEMU" ] || { echo "run.sh: no QEMU at $LAB_QEMU: run tools/lab/setup.sh (or tools/qemu/build.sh)" >&2; exit 1; }
qemu=("$LAB_QEMU" -machine "$machine" -cpu max -smp 2 -m "$mem"
      -nodefaults -no-reboot -kernel "$image" -initrd "$initrd" -append "$append" "${devices[@]}")
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

: "${timeout:=$(case "$flavour" in *debug) echo 1500 ;; *) echo 600 ;; esac)}"
echo "[run] $mode on the $flavour kernel (log: $log, timeout ${timeout}s)"
set +e
timeout --foreground -k 5 "$timeout" "${qemu[@]}" -display none -serial stdio < /dev/null 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
exec "$here/judge.sh" "$mode" "$log" "$status"
