#!/bin/sh
# Guest demo: load the project's modules and show what they did.
# (The mediated-device sample replaces the smoke module here once it lands.)
echo "demo: loading lab_smoke"
insmod /lib/labtest/lab_smoke.ko || exit 1
dmesg | grep -E 'lab_smoke' | tail -5
lsmod
rmmod lab_smoke
