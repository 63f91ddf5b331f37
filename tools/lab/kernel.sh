#!/usr/bin/env bash
# Builds the lab kernel: unpacks Linux 6.12 into the cache, applies the project's rust/ overlay,
# configures from the flavour's fragments in configs/ and builds Image + in-tree modules, then the
# project's out-of-tree modules (top-level Kbuild). Incremental: a second run rebuilds only what
# changed.
#
# usage: kernel.sh [release|debug|c-smmu|c-smmu-debug]   (default release; FLAVOUR env too)
#   release, debug: the project's Rust SMMUv3 driver built in (the lab's default platform);
#   c-smmu, c-smmu-debug: the C arm-smmu-v3 driver (the baseline). See kenv.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
. "$here/kenv.sh" "${1:-${FLAVOUR:-release}}"

log() { printf '[kernel:%s] %s\n' "$FLAVOUR" "$*"; }

# --- source tree -----------------------------------------------------------------------------
if [ ! -f "$KSRC/.lab-unpacked" ]; then
    log "unpacking linux-source $KVERSION into $KSRC"
    rm -rf "$KSRC" "$KSRC.tmp"
    mkdir -p "$KSRC.tmp"
    tar xf /usr/src/linux-source-6.12.tar.xz -C "$KSRC.tmp" --strip-components=1
    mv "$KSRC.tmp" "$KSRC"
    touch "$KSRC/.lab-unpacked"
fi
"$here/overlay.sh" "$KSRC"

# --- configuration ---------------------------------------------------------------------------
mkdir -p "$KBUILD"
# base.config has the C arm-smmu-v3 (upstream's driver, with its KUnit suite); rust-smmu.config,
# merged last, turns it off and builds the Rust driver in: every flavour but c-smmu*.
fragments=("$here/configs/base.config")
case "$FLAVOUR" in *debug) fragments+=("$here/configs/debug.config") ;; esac
case "$FLAVOUR" in c-smmu*) ;; *) fragments+=("$here/configs/rust-smmu.config") ;; esac
want=$(cat "${fragments[@]}" | sha256sum | cut -c1-16)
if [ ! -f "$KBUILD/.config" ] || [ "$(cat "$KBUILD/.lab-config" 2>/dev/null)" != "$want" ]; then
    log "configuring from ${fragments[*]##*/}"
    kmake allnoconfig >/dev/null
    KCONFIG_CONFIG="$KBUILD/.config" "$KSRC/scripts/kconfig/merge_config.sh" -m -O "$KBUILD" \
        "$KBUILD/.config" "${fragments[@]}" >/dev/null
    kmake olddefconfig >/dev/null
    # Every option the fragments ask for must have survived olddefconfig (a dependency missing
    # silently drops it). A later fragment overrides an earlier one: the last value counts.
    bad=0
    while IFS= read -r line; do
        case "$line" in CONFIG_*=*) ;; *) continue ;; esac
        opt=${line%%=*} val=${line#*=}
        if [ "$val" = n ]; then
            grep -q "^$opt=" "$KBUILD/.config" && { echo "config: $opt should be unset" >&2; bad=1; }
        elif ! grep -qx "$line" "$KBUILD/.config"; then
            echo "config: asked for $line, got: $(grep "^$opt=\|# $opt " "$KBUILD/.config" || echo missing)" >&2
            bad=1
        fi
    done < <(cat "${fragments[@]}" | awk -F= '/^CONFIG_/ { v[$1] = $0; if (!($1 in o)) o[$1] = n++ }
                                            END { for (k in o) print v[k] }')
    [ $bad = 0 ] || { echo "kernel.sh: config fragment not satisfied" >&2; exit 1; }
    echo "$want" > "$KBUILD/.lab-config"
fi

# --- build -----------------------------------------------------------------------------------
log "building Image and modules (linux $KVERSION, $($KRUSTC --version | cut -d' ' -f1-2))"
kmake KRUSTFLAGS=-Dwarnings -j"$JOBS" Image modules 2>&1 | { grep -Ev '^  [A-Z]' || true; }
[ "${PIPESTATUS[0]}" = 0 ] || { echo "kernel.sh: kernel build failed" >&2; exit 1; }
log "building project modules (Kbuild)"
"$here/modules.sh"
