# Sourced after env.sh with the flavour as $1: kernel tree, build dir and the make wrapper.
# Flavours (configs/*.config, docs/rust-smmuv3.md): the project's Rust SMMUv3 driver is the
# default platform, the C arm-smmu-v3 the baseline:
#   release       Rust SMMUv3 driver built in, C driver off   (base + rust-smmu)
#   debug         the same with KASAN, lockdep, kmemleak ...   (base + debug + rust-smmu)
#   c-smmu        the C arm-smmu-v3 (and its KUnit suite)      (base)
#   c-smmu-debug  the same with the debug options             (base + debug; by hand)
FLAVOUR=$1
case "$FLAVOUR" in
release|debug|c-smmu|c-smmu-debug) ;;
rust-smmu|rust-smmu-debug)
    new=release; [ "$FLAVOUR" = rust-smmu-debug ] && new=debug
    echo "flavour '$FLAVOUR' is gone: the Rust SMMUv3 driver is now the default, use '$new' (the C arm-smmu-v3 baseline is c-smmu / c-smmu-debug)" >&2
    exit 2 ;;
*) echo "unknown flavour '$FLAVOUR' (release|debug: Rust SMMUv3 driver; c-smmu|c-smmu-debug: C arm-smmu-v3)" >&2; exit 2 ;;
esac
KVERSION=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || echo unknown)
KSRC=$LAB_CACHE/linux-$KVERSION
KBUILD=$LAB_CACHE/build-$FLAVOUR
JOBS=${JOBS:-$(($(nproc) + 1))}
KMAKE_ARGS=(ARCH=arm64 LLVM=1 RUSTC="$KRUSTC" BINDGEN="$BINDGEN" CLIPPY_DRIVER=/usr/bin/clippy-driver
            RUSTDOC=/usr/bin/rustdoc)
kmake() { make -s -C "$KSRC" O="$KBUILD" "${KMAKE_ARGS[@]}" "$@"; }
export FLAVOUR KVERSION KSRC KBUILD JOBS
