#!/bin/bash
# tests/run.sh BUILD_DIR...: the whole suite against each build folder
# (the folder holding pop3d, pop3c and tests/test_*): the C unit tests,
# then the end-to-end tests with pytest.  Sanitizer reports are written
# to files and count as failures.  Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.." || exit 1
[ $# -gt 0 ] || set -- .

PYTEST=${PYTEST:-pytest-3}
pass=0
fail=0
skip=0
logs=$(mktemp -d)
chmod 1777 "$logs"	# workers that dropped to --user write reports too
# pytest's temp folders of this run only: its default folder is shared by
# every run on the machine, and a run prunes the others' folders.
temps=$(mktemp -d)
trap 'rm -rf "$logs" "$temps"' EXIT

for build in "$@"; do
	build=$(cd "$build" && pwd)
	echo "### build: $build"
	export POP3_BINDIR=$build
	export ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1"
	export UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1"
	for t in test_proto test_store test_client test_proxy test_maildir; do
		out=$("$build/tests/$t" 2>&1)
		rc=$?
		p=$(grep -c '^ok ' <<<"$out")
		f=$(grep -c '^not ok ' <<<"$out")
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			f=1
		fi
		grep -E '^(not ok|#)' <<<"$out"
		echo "$t: $p passed, $f failed"
		pass=$((pass + p))
		fail=$((fail + f))
	done
	out=$("$PYTEST" -q -rfEs -p no:cacheprovider --timeout=300 \
	    --basetemp="$temps/$(basename "$build")" tests/ ${PYTEST_ARGS:-} 2>&1)
	echo "$out" | tail -n 60
	summary=$(tail -n 1 <<<"$out")
	p=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || echo 0)
	f=$(grep -oE '[0-9]+ (failed|error|errors)' <<<"$summary" |
	    awk '{ n += $1 } END { print n + 0 }')
	s=$(grep -oE '[0-9]+ skipped' <<<"$summary" | grep -oE '[0-9]+' || echo 0)
	[ -n "$f" ] || f=0
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		f=1	# pytest ran nothing or crashed
	fi
	pass=$((pass + p))
	fail=$((fail + f))
	skip=$((skip + s))
	for r in "$logs"/*; do
		[ -e "$r" ] || continue
		echo "### sanitizer report $r:"
		head -n 40 "$r"
		fail=$((fail + 1))
		rm -f "$r"
	done
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
