#!/usr/bin/env bash
# The project's main job: set up the lab, build the kernel and modules, boot the guest and run
# the demo (see tools/lab/guest/demo.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/setup.sh"
"$here/kernel.sh" release
exec "$here/run.sh" demo --flavour release
