#!/usr/bin/env bash
# `dmabuf run` tests (TAP): the multi-process and fault cases of run_test.c,
# each under its own `dmabuf run`; nothing left behind after a run; and, when
# the kernel rig's selftests are built (rig.env: RIG_KSELFTESTS), the kernel's
# sync_test, dmabuf-heap and udmabuf unmodified under `dmabuf run`.
#   test/run/run-tests.sh [--no-selftests] [--no-js]
set -uo pipefail
opts=" $* "
cd "$(dirname "$0")/../.."
root=$PWD
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() { node "$root/dist/cli.js" run "$@"; }
n=0; fail=0
ok() { n=$((n + 1)); echo "ok $n $*"; }
notok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n $*"; }

gcc -O1 -Wall -Werror -o "$out/run_test" test/run/run_test.c || { echo "Bail out! run_test.c does not build"; exit 1; }
g++ -std=c++20 -O1 -Wall -Werror -I native -o "$out/fuzz_broker" test/run/fuzz_broker.cc native/run/msg.cc ||
  { echo "Bail out! fuzz_broker.cc does not build"; exit 1; }
echo "TAP version 13"
for c in fork-signals-parent busy-buffer-crosses exec-inherits client-killed garbage broker-killed; do
  if timeout 120 node "$root/dist/cli.js" run -- "$out/run_test" "$c" 2>"$out/err"; then ok "$c"; else notok "$c"; sed 's/^/# /' "$out/err"; fi
done

# The broker's protocol fuzzed (DMABUF_RUN_BROKER may name a sanitizer build's broker).
seed=${FUZZ_SEED:-$RANDOM}
if timeout 600 node "$root/dist/cli.js" run --emulate -- "$out/fuzz_broker" "$seed" "${FUZZ_ROUNDS:-4000}" >"$out/fuzz" 2>&1; then
  ok "broker protocol fuzz, seed $seed: $(tail -1 "$out/fuzz")"
else
  notok "broker protocol fuzz, seed $seed (FUZZ_SEED=$seed to repeat)"; grep -v 'malformed request' "$out/fuzz" | tail -40 | sed 's/^/# /'
fi

# Nothing left behind: the broker is gone and its tree removed once the run ends.
info=$(run -- sh -c 'echo "$DMABUF_RUN_ROOT $DMABUF_RUN_BROKER_PID"')
set -- $info
if [ -n "${1:-}" ] && [ ! -e "$1" ] && ! kill -0 "${2:-0}" 2>/dev/null; then ok "nothing left behind (tree, broker)"; else notok "nothing left behind: $info"; fi
# The command's status comes back; a killed command is 128 + signal.
run -- sh -c 'exit 7'; s=$?
run -- sh -c 'kill -TERM $$'; t=$?
if [ $s = 7 ] && [ $t = 143 ]; then ok "exit status passes through (7, 143)"; else notok "exit status: $s $t"; fi
# A bad command line is status 2 with the usage.
run --profile nosuch -- true 2>/dev/null; u=$?
if [ $u = 2 ]; then ok "unknown profile is a usage error"; else notok "unknown profile: $u"; fi
# Profiles: each lists its heaps under /dev/dma_heap.
cma=$(run --profile cma -- ls /dev/dma_heap | tr '\n' ' ')
case "$cma" in *system*default_cma_region*|*default_cma_region*system*) ok "--profile cma lists: $cma" ;; *) notok "--profile cma lists: $cma" ;; esac

if [[ $opts != *" --no-selftests "* ]]; then
  env_file=""
  for f in "${KERNEL_RIG_DIR:-/work/shared/kernel-rig}/rig.env" /var/cache/kernel-rig/rig.env; do [ -f "$f" ] && env_file=$f && break; done
  [ -n "$env_file" ] && . "$env_file"
  for t in sync_test dmabuf-heap udmabuf; do
    bin="${RIG_KSELFTESTS:-}/$t"
    if [ ! -x "$bin" ]; then ok "kernel selftest $t # SKIP not built (kernel-rig setup.sh builds it)"; continue; fi
    timeout 600 node "$root/dist/cli.js" run --emulate -- "$bin" >"$out/$t.out" 2>&1
    # What the real kernel (6.12 in the rig) reports: sync_test 10/10;
    # dmabuf-heap all but the vgem import (skip); udmabuf 1-5, then case 6
    # cannot map a 2 MiB hugetlb memfd (no huge pages) and exits 1.
    case $t in
      sync_test) want='# Totals: pass:10 fail:0 xfail:0 xpass:0 skip:0 error:0' ;;
      dmabuf-heap) want='# Totals: pass:10 fail:0 xfail:0 xpass:0 skip:1 error:0' ;;
      udmabuf) want='ok 5 drivers/dma-buf/udmabuf: [PASS,test-5]' ;;
    esac
    if grep -qF "$want" "$out/$t.out" && ! grep -q '^not ok' "$out/$t.out"; then ok "kernel selftest $t under dmabuf run: $want"; else notok "kernel selftest $t"; sed 's/^/# /' "$out/$t.out"; fi
  done
fi
# The package's own real-kernel JS tests, through the kernel backend.
[[ $opts == *" --no-js "* ]] || for t in sync_file_js dmabuf_sync_js heaps_js; do
  if timeout 300 node "$root/dist/cli.js" run --emulate -- node "test/kernel/$t.mjs" >"$out/$t.out" 2>&1; then
    ok "test/kernel/$t.mjs under dmabuf run: $(grep '^# Totals' "$out/$t.out")"
  else
    notok "test/kernel/$t.mjs under dmabuf run"; sed 's/^/# /' "$out/$t.out" | tail -40
  fi
done

# Both ways: the same selftests in the real kernel (one rig boot), result lines compared.
if [ "${RIG_COMPARE:-0}" = 1 ] && [ -x "${KERNEL_RIG_DIR:-/work/shared/kernel-rig}/run-in-kernel.sh" ] && [ -n "${RIG_KSELFTESTS:-}" ]; then
  "${KERNEL_RIG_DIR:-/work/shared/kernel-rig}/run-in-kernel.sh" \
    "for t in sync_test dmabuf-heap udmabuf; do echo \"=== \$t\"; $RIG_KSELFTESTS/\$t; done" >"$out/rig.out" 2>&1
  for t in sync_test dmabuf-heap udmabuf; do
    kernel=$(awk -v t="$t" '$0 == "=== " t {on=1; next} /^=== / {on=0} on' "$out/rig.out" | grep -E '^(ok|not ok|# Totals)' | sed 's/[0-9]\+ *$//')
    ours=$(grep -E '^(ok|not ok|# Totals)' "$out/$t.out" | sed 's/[0-9]\+ *$//')
    if [ -n "$kernel" ] && [ "$kernel" = "$ours" ]; then ok "$t: the same result lines under dmabuf run and in the kernel ($(echo "$ours" | grep -c '^ok') ok)"
    else notok "$t differs from the kernel"; diff <(echo "$kernel") <(echo "$ours") | sed 's/^/# /'; fi
  done
fi
echo "1..$n"
exit $((fail > 0))
