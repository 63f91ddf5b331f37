#!/usr/bin/env bash
# Installs everything the lab needs: kernel build toolchain, guest userland pieces, the lab's QEMU
# (built from source with tools/qemu/patches, see tools/qemu/README.md) and a pinned bindgen.
# Idempotent: a second run on a set-up machine only checks and prints versions.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

log() { printf '[setup] %s\n' "$*"; }

# --- apt sources: bookworm-backports derived from the machine's own Debian entry -------------
backports=/etc/apt/sources.list.d/lab-backports.sources
if [ ! -f "$backports" ]; then
    src=/etc/apt/sources.list.d/debian.sources
    [ -f "$src" ] || { echo "setup: no $src to derive bookworm-backports from" >&2; exit 1; }
    # First deb822 stanza whose suites include plain "bookworm"; only Suites changes.
    awk 'BEGIN{RS=""; ORS="\n\n"} /Suites:[^\n]*bookworm( |$|\n)/ && !done {
            gsub(/Suites:[^\n]*/, "Suites: bookworm-backports"); print; done=1 }' "$src" > "$backports.tmp"
    grep -q 'bookworm-backports' "$backports.tmp" || { echo "setup: could not derive backports" >&2; exit 1; }
    mv "$backports.tmp" "$backports"
    need_update=1
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    need_update=1
fi

apt_pkgs=(linux-source-6.12 rustc-web rust-web-src rust-web-clippy libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross
          libclang-dev clang lld llvm flex bison bc libelf-dev libssl-dev cpio xz-utils kmod rsync
          ninja-build pkgconf libglib2.0-dev zlib1g-dev libfdt-dev python3-venv patch)
# QEMU 10's build needs meson >= 1.5 and pycotap: bookworm-backports has both.
backports_pkgs=(meson python3-pycotap)
missing=() missing_bpo=()
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in "${apt_pkgs[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${backports_pkgs[@]}"; do installed "$p" || missing_bpo+=("$p"); done
if installed meson && ! dpkg --compare-versions "$(dpkg-query -W -f='${Version}' meson)" ge 1.5; then
    missing_bpo+=(meson)
fi

if [ ${#missing[@]} -gt 0 ] || [ ${#missing_bpo[@]} -gt 0 ] || [ -n "${need_update:-}" ]; then
    log "apt-get update"
    apt-get update -qq
fi
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ${#missing_bpo[@]} -gt 0 ]; then
    log "installing from bookworm-backports: ${missing_bpo[*]}"
    apt-get install -y -qq --no-install-recommends -t bookworm-backports "${missing_bpo[@]}" >/dev/null
fi

# --- the lab's QEMU, built into the cache (a no-op when the patches did not change) -----------
"$LAB_ROOT/tools/qemu/build.sh" >/dev/null

# --- static arm64 busybox, unpacked into the cache (never installed) --------------------------
if [ ! -x "$LAB_CACHE/busybox/bin/busybox" ]; then
    log "fetching busybox-static:arm64"
    tmp=$(mktemp -d)
    chmod 777 "$tmp" # apt's download user must be able to write there
    (cd "$tmp" && apt-get download -qq busybox-static:arm64)
    mv "$tmp"/busybox-static_*_arm64.deb "$LAB_CACHE/busybox.deb"
    rm -rf "$tmp" "$LAB_CACHE/busybox"
    dpkg -x "$LAB_CACHE/busybox.deb" "$LAB_CACHE/busybox"
fi

# --- bindgen at a pinned version ---------------------------------------------------------------
if [ ! -x "$BINDGEN" ] || ! "$BINDGEN" --version | grep -q "$BINDGEN_VERSION"; then
    log "cargo install bindgen-cli $BINDGEN_VERSION"
    cargo install -q bindgen-cli --version "$BINDGEN_VERSION" --locked --root "$LAB_CACHE/bindgen"
fi

log "versions:"
printf '  %-22s %s\n' \
    linux-source "$(dpkg-query -W -f='${Version}' linux-source-6.12)" \
    rustc "$($KRUSTC --version)" \
    bindgen "$("$BINDGEN" --version)" \
    aarch64-gcc "$(aarch64-linux-gnu-gcc --version | head -1)" \
    clang "$(clang --version | head -1)" \
    qemu "$("$LAB_QEMU" --version | head -1) (+ $(ls "$LAB_ROOT"/tools/qemu/patches/*.patch | wc -l) lab patches)" \
    busybox "$(dpkg-deb -f "$LAB_CACHE"/busybox.deb Version 2>/dev/null || echo unpacked)"
