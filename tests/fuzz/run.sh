#!/bin/bash
# tests/fuzz/run.sh SECONDS BUILD_DIR NAME...: run each libFuzzer harness
# BUILD_DIR/tests/fuzz/fuzz_NAME for SECONDS on the seeds in
# tests/fuzz/corpus/NAME, growing a scratch corpus in BUILD_DIR/corpus/NAME
# (never in the tree).  A crash, a leak, a timeout or any sanitizer report
# fails the harness; its input is kept in BUILD_DIR/artifacts/NAME/.
# Prints one summary line per harness, then "fuzz: N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 1
[ $# -ge 3 ] || { echo "usage: $0 SECONDS BUILD_DIR NAME..." >&2; exit 64; }
secs=$1
build=$2
shift 2

pass=0
fail=0
for name in "$@"; do
	bin=$build/tests/fuzz/fuzz_$name
	work=$build/corpus/$name
	art=$build/artifacts/$name
	log=$build/fuzz-$name.log
	mkdir -p "$work" "$art" tests/fuzz/corpus/"$name"
	set -- -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix="$art/"
	[ -f tests/fuzz/"$name".dict ] && set -- "$@" -dict=tests/fuzz/"$name".dict
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	    "$bin" "$@" "$work" tests/fuzz/corpus/"$name" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' \
	    "$log" | tail -n 1)
	if [ "$rc" -ne 0 ] || grep -qE '^(==[0-9]+==ERROR|SUMMARY: )|runtime error:' "$log"; then
		echo "fuzz_$name: FAILED (exit $rc) after ${runs:-?} runs; log $log"
		grep -E -A40 '^==[0-9]+==|runtime error:|ERROR: libFuzzer' "$log" | head -n 60
		ls "$art" 2>/dev/null | sed 's/^/  artifact: /'
		fail=$((fail + 1))
	else
		echo "fuzz_$name: ok, ${runs:-?} runs in ${secs} s, ${cov:-no coverage line}"
		pass=$((pass + 1))
	fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
