# Sourced after env.sh with the flavour as $1: kernel tree, build dir and the make wrapper.
# Flavours: release, debug, and rust-smmu / rust-smmu-debug (release / debug with the Rust SMMUv3
# driver instead of the C arm-smmu-v3; configs/rust-smmu.config, see docs/rust-smmuv3.md).
FLAVOUR=$1
case "$FLAVOUR" in release|debug|rust-smmu|rust-smmu-debug) ;;
*) echo "unknown flavour '$FLAVOUR' (release|debug|rust-smmu|rust-smmu-debug)" >&2; exit 2 ;; esac
KVERSION=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || echo unknown)
KSRC=$LAB_CACHE/linux-$KVERSION
KBUILD=$LAB_CACHE/build-$FLAVOUR
JOBS=${JOBS:-$(($(nproc) + 1))}
KMAKE_ARGS=(ARCH=arm64 LLVM=1 RUSTC="$KRUSTC" BINDGEN="$BINDGEN" CLIPPY_DRIVER=/usr/bin/clippy-driver
            RUSTDOC=/usr/bin/rustdoc)
kmake() { make -s -C "$KSRC" O="$KBUILD" "${KMAKE_ARGS[@]}" "$@"; }
export FLAVOUR KVERSION KSRC KBUILD JOBS
