#!/bin/sh
# Guest demo: the edu_mdev sample. Loads it, creates several mdevs through sysfs, prints each
# one's PASID and mode, runs a copy through each one's VFIO device (tools/guest/mdev-client),
# prints the results, removes the mdevs and unloads the sample.
echo "demo: loading edu_mdev"
insmod /lib/labtest/edu_mdev.ko || exit 1
dmesg | grep -E 'edu_mdev' | tail -5
/bin/mdev-client demo 4
rc=$?
echo "demo: kernel log of the sample:"
dmesg | grep -E 'edu_mdev' | tail -12
rmmod edu_mdev || rc=1
echo "demo: done (rc=$rc)"
exit $rc
