#!/usr/bin/env bash
# The whole vitest suite against an ASan+UBSan build of the Node addon.
#
# Builds the addon with -DDMABUF_SANITIZE=address into its own cmake-js build
# directory (reused across runs; DMABUF_ASAN_ADDON_DIR, default build-asan-addon),
# then runs `npx vitest run` with the sanitizer runtimes preloaded into node and
# DMABUF_ADDON_PATH pointing lib/internal/binding.ts at that build. Every process the suite
# starts (vitest's forks, the tests' child node processes and their workers)
# inherits the environment, so every one of them runs the sanitized addon.
#
# Fails when vitest fails OR when any sanitizer report was written, even by a
# child process whose crash a test swallowed: reports go to per-process files
# ($dir/sanitizer-reports/report.PID), which are printed at the end, and the
# vitest log is grepped as well.
#
#   scripts/test-asan-addon.sh                 # build (if needed) and run everything
#   scripts/test-asan-addon.sh test/fence.test.ts   # extra arguments go to vitest
#   scripts/test-asan-addon.sh --run node test/fuzz/run.mjs --time 180   # any command instead
#
# Environment: DMABUF_ASAN_ADDON_DIR (build directory), JOBS (build parallelism,
# default 2), DMABUF_ASAN_SKIP_BUILD=1 (use the directory as it is).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

dir=${DMABUF_ASAN_ADDON_DIR:-build-asan-addon}
case $dir in /*) ;; *) dir=$root/$dir ;; esac
jobs=${JOBS:-2}

# --- build -------------------------------------------------------------------
if [ "${DMABUF_ASAN_SKIP_BUILD:-0}" != 1 ]; then
  cache=$dir/CMakeCache.txt
  if ! grep -q '^CMAKE_JS_VERSION' "$cache" 2>/dev/null ||
     ! grep -q '^DMABUF_SANITIZE:STRING=address$' "$cache"; then
    # A directory configured by plain cmake (e.g. CI's build-address, which has
    # the C++ tests) keeps its tests; a new one builds only what Node loads.
    tests=OFF
    grep -q '^DMABUF_TESTS:BOOL=ON' "$cache" 2>/dev/null && tests=ON
    npx cmake-js configure -O "$dir" --CDDMABUF_SANITIZE=address --CDDMABUF_TESTS=$tests >/dev/null
  fi
  # Not `cmake-js compile`: on a failed build it wipes the directory and starts over.
  cmake --build "$dir" --target dmabuf --parallel "$jobs" >"$dir/build-addon.log" 2>&1 ||
    { tail -50 "$dir/build-addon.log"; echo "test-asan-addon: FAIL: addon build"; exit 1; }
fi
addon=$dir/Release/dmabuf.node   # where cmake-js puts it (with the liburcu copies)
[ -f "$addon" ] || { echo "test-asan-addon: FAIL: no $addon"; exit 1; }
[ -d dist ] || { echo "test-asan-addon: FAIL: no dist/ (npm run build:ts first)"; exit 1; }

# --- run ---------------------------------------------------------------------
runtimes=""
for lib in libasan.so libubsan.so; do
  p=$(gcc -print-file-name=$lib)
  [ -e "$p" ] || { echo "test-asan-addon: FAIL: $lib not found (gcc -print-file-name)"; exit 1; }
  runtimes="$runtimes $(readlink -f "$p")"
done

reports=$dir/sanitizer-reports
rm -rf "$reports" && mkdir -p "$reports"
log=$dir/vitest-asan.log
cmd=(npx vitest run)
if [ "${1:-}" = --run ]; then
  shift
  cmd=()
  log=$dir/command-asan.log
fi

# detect_leaks=0: V8 and Node leak by design at exit. abort_on_error: a report
# ends the process with SIGABRT, which vitest and spawnSync see as a crash.
# handle_abort: an abort (an uncaught C++ exception, a Node FATAL ERROR) is
# reported with its stack like a crash. log_path: one file per process, so a
# report from a child whose stderr a test captured is still seen.
asan_opts="detect_leaks=0:abort_on_error=1:halt_on_error=1:handle_abort=1:log_path=$reports/report"
ubsan_opts="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$reports/report"

# LD_PRELOAD reaches every process the suite starts; tests start only node
# (some system tools, e.g. procps' uptime, hang with libasan preloaded).
start=$(date +%s)
set +e
LD_PRELOAD="${runtimes# }${LD_PRELOAD:+ $LD_PRELOAD}" \
  ASAN_OPTIONS="$asan_opts${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
  UBSAN_OPTIONS="$ubsan_opts${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
  DMABUF_ADDON_PATH="$addon" \
  "${cmd[@]}" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
echo "test-asan-addon: ${cmd[*]:-$1} exit $rc after $(( $(date +%s) - start ))s (addon: ${addon#$root/})"

found=0
shopt -s nullglob
files=("$reports"/report*)
if ((${#files[@]})); then
  found=1
  echo "test-asan-addon: ${#files[@]} sanitizer report file(s):"
  for f in "${files[@]}"; do echo "----- $f"; cat "$f"; done
fi
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer)' "$log"; then
  found=1
  echo "test-asan-addon: sanitizer output in the vitest log ($log):"
  grep -nE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: ' "$log" | head -40
fi
if ((found)); then echo "test-asan-addon: FAIL: sanitizer reports"; exit 1; fi
if ((rc)); then echo "test-asan-addon: FAIL: vitest exit $rc"; exit "$rc"; fi
echo "test-asan-addon: ok"
