#!/usr/bin/env bash
# The project's test command: every test, host and guest.
#   1. lab set-up (idempotent), 2. host `cargo test` for the whole workspace (includes the
#   qtest-driven QEMU tests), 3. kernel build + guest tests on the release kernel (the
#   project's Rust SMMUv3 driver, the lab's default platform) on the stock platform (edu),
#   the PASID platform (run.sh --platform pasid) and, for its one test, the PASID platform
#   without isolated MSIs (pasid-noits), 4. the C arm-smmu-v3 baseline (flavour c-smmu) on
#   the PASID platform, unless LAB_SKIP_C_SMMU=1, 5. the debug kernel (the Rust driver with
#   KASAN, lockdep, kmemleak, fault injection) on edu and on the PASID platform, every suite
#   on both, unless LAB_SKIP_DEBUG=1. Three kernel builds. Lints (rustfmt, clippy on the
#   host workspace, CLIPPY=1 on the kernel modules) fail the run too.
# Host tests that need QEMU fail without it; with LAB_NO_QEMU=1 they print a "LAB-SKIP" line
# instead (tools/qtest: require_qemu) and are counted here as skipped, not passed.
# Ends with one "N passed, N failed, N skipped" line over everything (benchmarks are reported
# apart, never as passed); exits non-zero on any failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
start=$SECONDS
[ -z "${LAB_SKIP_RUST_SMMU:-}" ] || {
    echo "test.sh: LAB_SKIP_RUST_SMMU is gone: the Rust SMMUv3 driver is the default (release, debug); LAB_SKIP_C_SMMU=1 leaves out the C-driver baseline" >&2
    exit 2
}
stamp() { printf '[test] %s (%ds)\n' "$*" $((SECONDS - start)); }

stamp "set-up"
"$here/setup.sh"

stamp "host tests: cargo test --workspace"
# Build output lives in the cache, not in the clone: a fresh clone's CI run then rebuilds only
# the workspace's own crates, not their dependencies (about a minute of the warm run).
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$LAB_CACHE/target-host}
host_log=$LAB_CACHE/last-host-tests.log
set +e
(cd "$LAB_ROOT" && cargo test --workspace --no-fail-fast 2>&1) | tee "$host_log"
host_status=${PIPESTATUS[0]}
set -e
read -r host_passed host_failed host_skipped < <("$here/hostcount.sh" "$host_log")
[ "$host_status" = 0 ] || [ "$host_failed" -gt 0 ] || host_failed=1 # a build failure counts

stamp "lints: rustfmt, clippy (host workspace)"
lint_status=0
(cd "$LAB_ROOT" && cargo fmt --all --check) || { echo "[test] FAILED: rustfmt"; lint_status=1; }
(cd "$LAB_ROOT" && cargo clippy -q --workspace --all-targets -- -D warnings) ||
    { echo "[test] FAILED: clippy"; lint_status=1; }

guest_passed=0 guest_failed=0 guest_skipped=0 guest_status=0 runs=()
flavours=(release)
[ "${LAB_SKIP_C_SMMU:-0}" = 1 ] || flavours+=(c-smmu)
[ "${LAB_SKIP_DEBUG:-0}" = 1 ] || flavours+=(debug)
for f in "${flavours[@]}"; do
    stamp "kernel build ($f)"
    "$here/kernel.sh" "$f"
    if [ "$f" = release ]; then
        stamp "lints: CLIPPY=1 on the project's kernel modules"
        CLIPPY=1 "$here/modules.sh" "$f" >/dev/null || { echo "[test] FAILED: kernel clippy"; lint_status=1; }
        stamp "lints: rustdoc of the kernel crate with the overlay"
        "$here/rustdoc.sh" || { echo "[test] FAILED: rustdoc"; lint_status=1; }
    fi
    # The release kernel runs on both platforms and, for its one test, on the PASID platform
    # without isolated MSIs (GICv2); the debug kernel runs every suite on both platforms (the
    # PASID machine is where set_dev_pasid, the aux domains' CD tables and the sample's PASID
    # mode run under KASAN, lockdep and kmemleak). The C baseline runs every suite once, on the
    # PASID platform: there its KUnit suite, the io-pgtable selftest, smmu_bench (the figures
    # the Rust driver is compared with) and the PASID suites (pasid_dma, auxdomain, the
    # sample's PASID mode through arm-smmu-v3's set_dev_pasid) all run, and a suite that
    # passes only on the Rust driver would show up.
    case "$f" in
    release) platforms=(edu pasid pasid-noits) ;;
    c-smmu) platforms=(pasid) ;;
    debug) platforms=(edu pasid) ;;
    *) platforms=(edu) ;;
    esac
    for plat in "${platforms[@]}"; do
        stamp "guest tests ($f, platform $plat)"
        log=$LAB_CACHE/last-test-$f.log
        [ "$plat" = edu ] || log=$LAB_CACHE/last-test-$f-$plat.log
        rm -f "$log" # never judge a previous run's log
        set +e
        only=()
        [ "$plat" = pasid-noits ] && only=(--filter mdev:pasid_msi)
        "$here/run.sh" test --flavour "$f" --platform "$plat" "${only[@]}"
        s=$?
        set -e
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$log" 2>/dev/null | tail -1)
        p=$(echo "$line" | sed -nE 's/^([0-9]+) passed.*/\1/p')
        q=$(echo "$line" | sed -nE 's/.* ([0-9]+) failed.*/\1/p')
        k=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
        guest_passed=$((guest_passed + ${p:-0}))
        guest_failed=$((guest_failed + ${q:-0}))
        guest_skipped=$((guest_skipped + ${k:-0}))
        [ $s = 0 ] || { guest_status=1; [ "${q:-0}" -gt 0 ] || guest_failed=$((guest_failed + 1)); }
        runs+=("$f/$plat")
    done
done

stamp "done: host $host_passed passed, $host_failed failed, $host_skipped skipped; guest (${runs[*]}) $guest_passed passed, $guest_failed failed, $guest_skipped skipped"
echo "$((host_passed + guest_passed)) passed, $((host_failed + guest_failed)) failed, $((host_skipped + guest_skipped)) skipped"
[ "$host_status" = 0 ] && [ "$guest_status" = 0 ] && [ "$lint_status" = 0 ]
