# Sourced by the lab scripts: where caches live and which tools are used. Nothing here is in the repo.
LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_CACHE=${LAB_CACHE:-$HOME/.cache/pasid-mdev-lab}
mkdir -p "$LAB_CACHE"
BINDGEN_VERSION=0.73.2
BINDGEN=$LAB_CACHE/bindgen/bin/bindgen
KRUSTC=/usr/bin/rustc
# The lab's QEMU (tools/qemu/build.sh); tools/qtest finds it the same way (qtest::qemu_binary).
LAB_QEMU=${LAB_QEMU:-$LAB_CACHE/qemu/install/bin/qemu-system-aarch64}
export LAB_ROOT LAB_CACHE BINDGEN_VERSION BINDGEN KRUSTC LAB_QEMU
