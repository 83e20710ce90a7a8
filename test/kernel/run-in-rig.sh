#!/usr/bin/env bash
# run-in-rig.sh [--asan] [--tsan] [--bench] [--no-build] [-- GTEST_ARGS...]
#
# Builds the real-kernel tests (dmabuf_kernel_tests) on the host and runs them
# inside the kernel rig (../shared/kernel-rig: a Debian 6.12 kernel under qemu
# with /dev/dma_heap/system, /dev/udmabuf and sw_sync), all in ONE boot.
#   --asan      also build build-asan (-DDMABUF_SANITIZE=address) and run it in the same boot
#   --tsan      also build build-tsan (-DDMABUF_SANITIZE=thread) and run it in the same boot
#   --bench     also run `dmabuf-bench --filter=kernel` and the JS kernel rows
#               (`dmabuf bench --js-only --filter kernel`) in the same boot
#   --no-build  use the existing build dirs
# Exit status: 0 if every run passed, 1 if any failed, 2 on a build error.
# If the rig is not set up this prints "SKIP: ..." and exits 0 (RIG_REQUIRED=1
# makes that an error, exit 3).
# Env: KERNEL_RIG_DIR (default ../shared/kernel-rig from the repo root), BUILD_DIR
# (default build-dev), ASAN_BUILD_DIR / TSAN_BUILD_DIR (build-asan, build-tsan), plus the rig's own
# RIG_* knobs (RIG_MEM, RIG_TIMEOUT, ...).
# The JS part also runs `dmabuf selftest --backend kernel` into SELFTEST_KTAP (default
# build-rig-out/selftest-kernel.ktap) and checks it with test/kernel/check-ktap.sh (kunit.py).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RIG_DIR=${KERNEL_RIG_DIR:-$(cd "$ROOT/.." && pwd)/shared/kernel-rig}
RIG_CACHE_DIR=${RIG_CACHE:-/var/cache/kernel-rig}
BUILD_DIR=${BUILD_DIR:-build-dev}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
TSAN_BUILD_DIR=${TSAN_BUILD_DIR:-build-tsan}
SELFTEST_KTAP=${SELFTEST_KTAP:-build-rig-out/selftest-kernel.ktap}
ASAN=0 TSAN=0 BENCH=0 BUILD=1
GTEST_ARGS=()
while [ $# -gt 0 ]; do
	case $1 in
	--asan) ASAN=1 ;;
	--tsan) TSAN=1 ;;
	--bench) BENCH=1 ;;
	--no-build) BUILD=0 ;;
	--) shift; GTEST_ARGS=("$@"); break ;;
	-h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run-in-rig.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

skip() {
	echo "SKIP: real-kernel tests not run: $*"
	if [ "${RIG_REQUIRED:-0}" = 1 ]; then exit 3; fi
	exit 0
}
[ -x "$RIG_DIR/run-in-kernel.sh" ] || skip "no kernel rig at $RIG_DIR (set KERNEL_RIG_DIR)"
[ -r "$RIG_CACHE_DIR/rig.env" ] || skip "the kernel rig is not set up ($RIG_CACHE_DIR/rig.env missing: run $RIG_DIR/setup.sh)"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (run $RIG_DIR/setup.sh)"

cd "$ROOT" || exit 2
build() { # dir, extra cmake args...
	local dir=$1; shift
	cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null &&
		ninja -C "$dir" -j2 dmabuf_kernel_tests dmabuf-bench vgem_import >/dev/null
}
if [ $BUILD = 1 ]; then
	echo "== building $BUILD_DIR" >&2
	build "$BUILD_DIR" || { echo "run-in-rig.sh: build of $BUILD_DIR failed" >&2; exit 2; }
	if [ $ASAN = 1 ]; then
		echo "== building $ASAN_BUILD_DIR (ASan+UBSan)" >&2
		build "$ASAN_BUILD_DIR" -DDMABUF_SANITIZE=address ||
			{ echo "run-in-rig.sh: build of $ASAN_BUILD_DIR failed" >&2; exit 2; }
	fi
	if [ $TSAN = 1 ]; then
		echo "== building $TSAN_BUILD_DIR (TSan)" >&2
		build "$TSAN_BUILD_DIR" -DDMABUF_SANITIZE=thread ||
			{ echo "run-in-rig.sh: build of $TSAN_BUILD_DIR failed" >&2; exit 2; }
	fi
fi

q() { printf '%q ' "$@"; }
# One guest command line: every run, each status remembered, a summary at the end.
CMD='rc=0; summary=""; run() { local name=$1; shift; echo "===== $name: $*"; "$@"; local s=$?; summary+="$name: exit $s"$'"'"'\n'"'"'; [ $s = 0 ] || rc=1; }; '
CMD+="echo \"kernel: \$(uname -r)\"; "
CMD+="run kernel-tests $(q "./$BUILD_DIR/dmabuf_kernel_tests" "${GTEST_ARGS[@]}"); "
if [ $ASAN = 1 ]; then
	CMD+="ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 "
	CMD+="run kernel-tests-asan $(q "./$ASAN_BUILD_DIR/dmabuf_kernel_tests" --gtest_brief=1 "${GTEST_ARGS[@]}"); "
fi
if [ $TSAN = 1 ]; then
	CMD+="TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 "
	CMD+="run kernel-tests-tsan $(q "./$TSAN_BUILD_DIR/dmabuf_kernel_tests" --gtest_brief=1 "${GTEST_ARGS[@]}"); "
fi
# The JS tests against the real kernel: SyncFile/SwSyncTimeline, and heaps,
# dma-bufs and udmabuf (they need a built addon and dist/: npm run build);
# skipped with a reason if absent.
JS=0
if [ -f dist/index.js ] && [ -f dist/cli.js ]; then
	JS=1
	CMD+="run js-sync-file-tests node test/kernel/sync_file_js.mjs; "
	CMD+="run js-heap-tests node test/kernel/heaps_js.mjs; "
	CMD+="run js-dmabuf-sync node test/kernel/dmabuf_sync_js.mjs; "
	# `dmabuf selftest --backend kernel` (KTAP into $SELFTEST_KTAP, parsed by kunit.py below) and probe
	mkdir -p "$(dirname "$SELFTEST_KTAP")" && rm -f "$SELFTEST_KTAP"
	CMD+="run js-probe node test/kernel/probe_js.mjs; "
	CMD+="run selftest-kernel node dist/cli.js selftest --backend kernel --output $(q "$SELFTEST_KTAP"); "
else
	echo "run-in-rig.sh: dist/ not built: JS kernel tests and JS bench rows skipped (npm run build)" >&2
fi
if [ $BENCH = 1 ]; then
	CMD+="run kernel-bench $(q "./$BUILD_DIR/dmabuf-bench" --filter=kernel); "
	# The rows measured from JS (sync_file wait latency), without the native scenarios.
	[ $JS = 1 ] && CMD+="run js-kernel-bench node dist/cli.js bench --js-only --filter kernel; "
fi
CMD+='echo "===== summary"; printf "%s" "$summary"; exit $rc'

echo "== booting the rig ($RIG_DIR)" >&2
"$RIG_DIR/run-in-kernel.sh" "$CMD"
st=$?
# A second boot with vgem loaded (a DRM driver in the first would change what probe and
# selftest see): a kernel-heap buffer imported into vgem over SCM_RIGHTS (test/kernel/vgem_js.mjs).
if [ $JS = 1 ]; then
	echo "== booting the rig with RIG_MODULES=vgem: js-vgem-import" >&2
	RIG_MODULES="${RIG_MODULES:+$RIG_MODULES }vgem" "$RIG_DIR/run-in-kernel.sh" \
		"echo '===== js-vgem-import'; node test/kernel/vgem_js.mjs $(q "./$BUILD_DIR/vgem_import")" ||
		{ echo "run-in-rig.sh: js-vgem-import failed" >&2; [ $st = 0 ] && st=1; }
fi
if [ $JS = 1 ] && [ -f "$SELFTEST_KTAP" ]; then
	sed 's/^/    /' "$SELFTEST_KTAP" | grep -v '# SKIP' >&2
	test/kernel/check-ktap.sh "$SELFTEST_KTAP" || { [ $st = 0 ] && st=1; }
elif [ $JS = 1 ] && [ $st = 0 ]; then
	echo "run-in-rig.sh: selftest wrote no $SELFTEST_KTAP" >&2; st=1
fi
case $st in
0) echo "run-in-rig.sh: all runs passed" >&2; exit 0 ;;
124) echo "run-in-rig.sh: the rig timed out" >&2; exit 1 ;;
125) echo "run-in-rig.sh: the guest did not report a status" >&2; exit 1 ;;
*) echo "run-in-rig.sh: failures (status $st)" >&2; exit 1 ;;
esac
