#!/usr/bin/env bash
# Builds the lab's QEMU: Debian's QEMU 10.0.2 source with the project's patch series
# (tools/qemu/patches/*.patch), aarch64-softmmu only, a device set of the virt machine, edu and
# the lab's PASID device. Installs into $LAB_CACHE/qemu/install and prints the binary's path.
#
# usage: build.sh [--force]
#
# Rebuilt only when this script, the device list or a patch changes (a hash stamp next to the
# install); incremental: files the patches do not touch keep their timestamps, so a patch change
# recompiles only what it touches. Nothing here writes outside $LAB_CACHE/qemu: the source comes
# through a private apt configuration (own sources and lists directories) whose deb-src entry is
# derived from the machine's Debian entry, as setup.sh derives bookworm-backports.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lab/env.sh"

QEMU_VERSION=10.0.2
QEMU_ORIG=qemu_${QEMU_VERSION}+ds.orig.tar.xz
QEMU_ORIG_SHA256=0901da33844a331bf8b3602b9c1fbd178e60b737c8e3ade678255bd090c9b9f1

qdir=$LAB_CACHE/qemu
install=$qdir/install
binary=$install/bin/qemu-system-aarch64
force=0
[ "${1:-}" = --force ] && force=1

log() { printf '[qemu] %s\n' "$*" >&2; }
die() { printf 'qemu/build.sh: %s\n' "$*" >&2; exit 1; }

inputs=("$here/build.sh" "$here/devices.mak")
shopt -s nullglob
patches=("$here"/patches/*.patch)
shopt -u nullglob
stamp=$(cat "${inputs[@]}" ${patches[@]+"${patches[@]}"} | sha256sum | cut -d' ' -f1)
if [ $force = 0 ] && [ -x "$binary" ] && [ "$(cat "$install/.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "$binary"
    exit 0
fi
mkdir -p "$qdir"

# --- source: the pinned orig tarball, fetched through a private apt configuration -------------
tarball=$qdir/dl/$QEMU_ORIG
if ! echo "$QEMU_ORIG_SHA256  $tarball" | sha256sum -c --status 2>/dev/null; then
    apt_dir=$qdir/apt
    src=/etc/apt/sources.list.d/debian.sources
    [ -f "$src" ] || die "no $src to derive a deb-src entry from"
    rm -rf "$apt_dir" "$qdir/dl"
    mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$qdir/dl"
    # First deb822 stanza whose suites include plain "bookworm"; only Types and Suites change.
    awk 'BEGIN{RS=""; ORS="\n\n"} /Suites:[^\n]*bookworm( |$|\n)/ && !done {
            gsub(/Types:[^\n]*/, "Types: deb-src"); gsub(/Suites:[^\n]*/, "Suites: bookworm-backports")
            print; done=1 }' "$src" > "$apt_dir/sources.list.d/qemu-src.sources"
    grep -q '^Types: deb-src' "$apt_dir/sources.list.d/qemu-src.sources" ||
        die "could not derive a deb-src entry from $src"
    apt_opts=(-o "Dir::Etc::SourceParts=$apt_dir/sources.list.d" -o Dir::Etc::SourceList=/dev/null
              -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
              -o APT::Sandbox::User=root -qq)
    log "fetching $QEMU_ORIG (bookworm-backports source)"
    apt-get "${apt_opts[@]}" update
    uris=$(apt-get "${apt_opts[@]}" source --print-uris qemu)
    # --print-uris lines: 'URI' file-name size checksum
    awk -v f="$QEMU_ORIG" '$2 == f { found = 1 } END { exit !found }' <<<"$uris" ||
        die "bookworm-backports no longer offers $QEMU_ORIG (it offers: $(awk '$2 ~ /orig/ { print $2 }' <<<"$uris" | tr '\n' ' ')); update QEMU_VERSION, QEMU_ORIG_SHA256 and rebase tools/qemu/patches"
    # The .dsc and the Debian tarball have answered 404 before: only the orig tarball is needed,
    # so apt's verdict on the others is not fatal; the checksum below decides.
    (cd "$qdir/dl" && apt-get "${apt_opts[@]}" source --download-only qemu >/dev/null 2>&1) || true
    [ -f "$tarball" ] || die "apt-get source did not download $QEMU_ORIG"
    echo "$QEMU_ORIG_SHA256  $tarball" | sha256sum -c --status ||
        die "$QEMU_ORIG has sha256 $(sha256sum "$tarball" | cut -d' ' -f1), not the pinned $QEMU_ORIG_SHA256: the archive moved on; check the new tarball, then update the pin and rebase the patches"
fi

# --- tree: pristine copy + patches, synced by content into the build's source tree ------------
orig=$qdir/orig/qemu-$QEMU_VERSION
if [ ! -f "$orig/VERSION" ] || [ "$(cat "$qdir/orig/.sha256" 2>/dev/null)" != "$QEMU_ORIG_SHA256" ]; then
    log "unpacking $QEMU_ORIG"
    rm -rf "$qdir/orig"
    mkdir -p "$qdir/orig"
    tar -C "$qdir/orig" --no-same-owner -xf "$tarball"
    [ -f "$orig/VERSION" ] || die "$QEMU_ORIG did not unpack to qemu-$QEMU_VERSION"
    echo "$QEMU_ORIG_SHA256" > "$qdir/orig/.sha256"
fi
stage=$qdir/stage
rm -rf "$stage"
cp -a "$orig" "$stage"
for p in ${patches[@]+"${patches[@]}"}; do
    log "applying $(basename "$p")"
    patch -d "$stage" -p1 --batch --forward --quiet --no-backup-if-mismatch < "$p" ||
        die "$(basename "$p") does not apply to QEMU $QEMU_VERSION"
done
cp "$here/devices.mak" "$stage/configs/devices/aarch64-softmmu/lab.mak"
# The +ds tarball drops the prebuilt EDK2 images pc-bios/meson.build lists whenever bzip2 is
# installed; empty stand-ins satisfy meson, and nothing unpacks them (only the emulator is built).
for fd in $(sed -n "s/^ *'\(edk2-[a-z0-9_-]*\.fd\)',$/\1/p" "$stage/pc-bios/meson.build"); do
    [ -e "$stage/pc-bios/$fd.bz2" ] || : > "$stage/pc-bios/$fd.bz2"
done
# Without -t, rsync gives the files it copies the current time and leaves identical ones alone:
# ninja then rebuilds exactly what the patches changed (including files a patch stopped touching).
mkdir -p "$qdir/src"
rsync -rlpc --delete "$stage/" "$qdir/src/"
rm -rf "$stage"

# --- configure, build, install ----------------------------------------------------------------
build=$qdir/build
if [ ! -f "$build/build.ninja" ]; then
    log "configuring"
    rm -rf "$build"
    mkdir -p "$build"
    (cd "$build" && "$qdir/src/configure" --prefix="$install" --python=/usr/bin/python3 \
        --target-list=aarch64-softmmu --without-default-features --without-default-devices \
        --with-devices-aarch64=lab --enable-fdt=system --disable-install-blobs \
        --disable-debug-info --disable-werror >"$qdir/configure.log" 2>&1) ||
        die "configure failed: see $qdir/configure.log"
fi
log "building ($(nproc) jobs; log: $qdir/build.log)"
t0=$(date +%s)
ninja -C "$build" -j"$(nproc)" qemu-system-aarch64 >"$qdir/build.log" 2>&1 ||
    { tail -30 "$qdir/build.log" >&2; die "build failed: see $qdir/build.log"; }
log "built in $(( $(date +%s) - t0 )) s"
rm -rf "$install"
mkdir -p "$install/bin"
cp "$build/qemu-system-aarch64" "$binary"
"$binary" --version | head -1 >&2
echo "$stamp" > "$install/.stamp"
echo "$binary"
