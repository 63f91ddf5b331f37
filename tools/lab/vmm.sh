#!/usr/bin/env bash
# Builds the VMM disk for the lab guest: Debian's arm64 qemu-system-aarch64 and exactly the shared
# libraries it loads, in a read-only ext2 image the guest mounts at /vmm (run.sh attaches it on
# virtio-mmio; docs/vm-guests.md). Nothing is installed: the arm64 packages are fetched with
# `apt-get download` and unpacked with `dpkg -x` into the cache.
#
#  1. package closure: qemu-system-arm:arm64 plus, level by level, the Depends/Pre-Depends of
#     every package fetched so far that are arm64 libraries (lib*, zlib1g), from
#     `apt-cache depends` (tools, data and maintainer-script helpers are not needed to run it);
#  2. file closure: from the qemu binary, the ELF NEEDED entries (and PT_INTERP), looked up in the
#     unpacked packages, until no new library turns up; a NEEDED entry no package provides fails.
#     Only those files go into the image. readelf is binutils-aarch64-linux-gnu (setup.sh).
#
# Rebuilt only when its inputs change: this script or apt's arm64 package indexes (apt-get update).
# usage: vmm.sh   -> prints the image path ($LAB_CACHE/vmm/vmm.img)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
log() { printf '[vmm] %s\n' "$*" >&2; }

dir=$LAB_CACHE/vmm
img=$dir/vmm.img
mkdir -p "$dir/debs"

# Inputs: this script and apt's arm64 package indexes (the closure is a function of both). Checked
# before resolving anything: apt-cache is slow (seconds per call on a loaded machine).
key=$( { cat "$0"; ls -l --time-style=+%s /var/lib/apt/lists/*_binary-arm64_Packages* 2>/dev/null; } |
    sha256sum | cut -c1-16)
if [ -f "$img" ] && [ "$(cat "$dir/key" 2>/dev/null)" = "$key" ]; then
    echo "$img"
    exit 0
fi

# --- 1. package closure ------------------------------------------------------------------------
declare -A seen=()
todo=(qemu-system-arm:arm64)
while [ ${#todo[@]} -gt 0 ]; do
    for p in "${todo[@]}"; do seen[$p]=1; done
    mapfile -t next < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances "${todo[@]}" 2>/dev/null |
        sed -nE 's/^ +\|?(Pre)?Depends: ((lib[^ <>]*|zlib1g):arm64)$/\2/p' | sort -u)
    todo=()
    for p in "${next[@]}"; do [ -n "${seen[$p]:-}" ] || todo+=("$p"); done
done
mapfile -t pkgs < <(printf '%s\n' "${!seen[@]}" | sort)
versions=$(apt-cache policy "${pkgs[@]}" |
    awk '/^[^ ].*:$/ { p = substr($0, 1, length($0) - 1) } /^  Candidate:/ { print p "=" $2 }')
[ "$(echo "$versions" | wc -l)" = ${#pkgs[@]} ] || { echo "vmm.sh: no candidate for some of: ${pkgs[*]}" >&2; exit 1; }
log "building the VMM image from ${#pkgs[@]} arm64 packages ($(echo "$versions" | grep '^qemu-system-arm'))"

# --- fetch and unpack --------------------------------------------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 777 "$tmp" # apt's download user must be able to write there
deb_of() { # pkg:arm64=version -> the file apt-get download names it (epoch ':' as %3a)
    local p=${1%%=*} v=${1#*=}
    echo "$dir/debs/${p%:arm64}_${v//:/%3a}_arm64.deb"
}
missing=()
while IFS= read -r pv; do
    [ -f "$(deb_of "$pv")" ] || missing+=("$pv")
done <<< "$versions"
if [ ${#missing[@]} -gt 0 ]; then
    (cd "$tmp" && apt-get download -qq "${missing[@]}") >&2
    mv "$tmp"/*.deb "$dir/debs/"
fi
unpacked=$tmp/unpacked
mkdir -p "$unpacked"
while IFS= read -r pv; do
    dpkg -x "$(deb_of "$pv")" "$unpacked"
done <<< "$versions"

# --- 2. file closure by ELF NEEDED -------------------------------------------------------------
root=$tmp/root
mkdir -p "$root"/{usr/bin,lib/aarch64-linux-gnu,dev,proc,sys,tmp,run,boot}
bin=$unpacked/usr/bin/qemu-system-aarch64
[ -x "$bin" ] || { echo "vmm.sh: no qemu-system-aarch64 in qemu-system-arm:arm64" >&2; exit 1; }
cp "$bin" "$root/usr/bin/"
interp=$(aarch64-linux-gnu-readelf -l "$bin" | sed -nE 's/.*Requesting program interpreter: (.*)\]/\1/p')
find_lib() { # soname -> its file in the unpacked packages
    local d
    for d in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu; do
        [ -e "$unpacked/$d/$1" ] && { echo "$unpacked/$d/$1"; return; }
    done
    return 1
}
declare -A have=()
queue=("$bin")
while [ ${#queue[@]} -gt 0 ]; do
    elf=${queue[0]} queue=("${queue[@]:1}")
    for so in $(aarch64-linux-gnu-readelf -d "$elf" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p'); do
        [ -n "${have[$so]:-}" ] && continue
        f=$(find_lib "$so") || { echo "vmm.sh: $so (NEEDED by ${elf##*/}) is in no fetched package" >&2; exit 1; }
        cp -L "$f" "$root/lib/aarch64-linux-gnu/$so"
        have[$so]=1
        queue+=("$f")
    done
done
mkdir -p "$root/$(dirname "$interp")"
cp -L "$unpacked/$interp" "$root/$interp"
log "qemu-system-aarch64 + ${#have[@]} libraries, $(du -sh "$root" | cut -f1)"

# --- image -------------------------------------------------------------------------------------
kib=$(( $(du -sk "$root" | cut -f1) * 5 / 4 + 4096 ))
rm -f "$img.tmp"
mke2fs -q -t ext2 -m 0 -L vmm -d "$root" "$img.tmp" "${kib}k" >&2
mv "$img.tmp" "$img"
echo "$versions" > "$dir/packages"
echo "$key" > "$dir/key"
echo "$img"
