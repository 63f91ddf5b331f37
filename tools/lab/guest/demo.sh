#!/bin/sh
# Guest demo: the edu_mdev sample. Loads it, creates four mdevs through sysfs (on edu-pasid in
# PASID mode on the PASID platform, run.sh demo's default; on edu in mediated mode on the stock
# one), prints each one's PASID and mode, runs a copy through each one's VFIO device (tools/guest/mdev-client; type1
# container and iommufd/cdev alternately), prints the results, removes the mdevs and unloads the
# sample; with the VMM disk attached, a VM copies through an mdev with its own driver. The
# kernel's own messages appear on the console as they happen.
echo "demo: loading edu_mdev"
insmod /lib/labtest/edu_mdev.ko || exit 1
/bin/mdev-client demo 4
rc=$?
# With run.sh --vm (release demo runs): a VM gets an mdev through QEMU's vfio-pci and its own
# driver copies through it (docs/vm-guests.md).
if [ -e /dev/vda ]; then
    echo "demo: a VM with an mdev"
    /bin/mdev-client vm || rc=1
fi
rmmod edu_mdev || rc=1
echo "demo: done (rc=$rc)"
exit $rc
