#!/usr/bin/env bash
# check-ktap.sh FILE
#
# Parses FILE, the KTAP of `dmabuf selftest`, with the kernel's own parser
# (tools/testing/kunit/kunit.py from the kernel rig: RIG_KUNIT, or the rig's
# rig.env) and checks that it found no parse problem ([ERROR] lines, an
# "errors:" count) and that the counts it reports equal ours (the
# "# Totals: pass:P fail:F skip:S total:T" line). Exit status: 0 when clean,
# 1 on a parse problem or a count mismatch; without kunit.py it prints
# "SKIP: ..." and exits 0 (KTAP_CHECK_REQUIRED=1 makes that exit 3).
set -uo pipefail
f=${1:?usage: check-ktap.sh FILE}
f=$(realpath "$f") || exit 1 # kunit.py changes directory before it opens the file
kunit=${RIG_KUNIT:-}
if [ -z "$kunit" ]; then
	env=${RIG_CACHE:-/var/cache/kernel-rig}/rig.env
	[ -r "$env" ] && kunit=$(sed -n 's/^RIG_KUNIT=//p' "$env")
fi
if [ -z "$kunit" ] || [ ! -f "$kunit/kunit.py" ]; then
	echo "SKIP: check-ktap: no kunit.py (set up the kernel rig: ../shared/kernel-rig/setup.sh)"
	[ "${KTAP_CHECK_REQUIRED:-0}" = 1 ] && exit 3
	exit 0
fi
out=$(python3 "$kunit/kunit.py" parse "$f" 2>&1)
ran=$(printf '%s\n' "$out" | grep -E 'Ran [0-9]+ tests?' | tail -1 | sed 's/.*\(Ran [0-9]* tests*:.*\)/\1/')
if [ -z "$ran" ]; then
	echo "check-ktap: kunit.py printed no summary line:"
	printf '%s\n' "$out" | tail -20
	exit 1
fi
echo "kunit.py: $ran"
if printf '%s\n' "$out" | grep -qE '\[ERROR\]|errors: [0-9]'; then
	echo "check-ktap: kunit.py found parse problems in $f:"
	printf '%s\n' "$out" | grep -E 'ERROR|errors:'
	exit 1
fi
read -r pass fail skip total < <(sed -n 's/^# Totals: pass:\([0-9]*\) fail:\([0-9]*\) skip:\([0-9]*\) total:\([0-9]*\)$/\1 \2 \3 \4/p' "$f")
if [ -z "${total:-}" ]; then echo "check-ktap: no '# Totals:' line in $f"; exit 1; fi
num() { printf '%s\n' "$ran" | grep -oE "$1: [0-9]+" | grep -oE '[0-9]+' || echo 0; }
kt=$(printf '%s\n' "$ran" | grep -oE 'Ran [0-9]+' | grep -oE '[0-9]+')
kp=$(num passed) kf=$(num failed) ks=$(num skipped)
if [ "$kt/$kp/$kf/$ks" != "$total/$pass/$fail/$skip" ]; then
	echo "check-ktap: counts differ: kunit.py total/passed/failed/skipped $kt/$kp/$kf/$ks, ours $total/$pass/$fail/$skip"
	exit 1
fi
echo "check-ktap: $f parsed clean; counts match ours (total $total: $pass passed, $fail failed, $skip skipped)"
