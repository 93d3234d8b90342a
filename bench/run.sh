#!/bin/sh
# bench/run.sh: `make bench` (see bench/README.md).
#   bench/run.sh [--quick] [--only retr|top] [--no-dovecot] [--out DIR] [--pop3d PATH]
# Builds the bench tools into bench/out/bin, generates the maildrops into
# bench/out/data once (regenerated when gen_maildrop.c changes), then runs
# bench/bench.py, which writes bench/out/results.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/out"
prev=""
for a in "$@"; do
	[ "$prev" = "--out" ] && out=$a
	prev=$a
done
CC=${CC:-cc}
BENCH_CFLAGS="-O2 -g -Wall -Wextra -D_GNU_SOURCE"
mkdir -p "$out/bin"
for t in loadgen sender gen_maildrop; do
	if [ ! -x "$out/bin/$t" ] || [ "$here/$t.c" -nt "$out/bin/$t" ] ||
	    [ "$here/common.h" -nt "$out/bin/$t" ]; then
		echo "cc $t"
		$CC $BENCH_CFLAGS -o "$out/bin/$t" "$here/$t.c"
	fi
done
stamp=$(cksum < "$here/gen_maildrop.c" | cut -d' ' -f1)
if [ "$(cat "$out/data/.stamp" 2>/dev/null)" != "$stamp" ]; then
	echo "generating maildrops in $out/data (about 590 MB, once)"
	rm -rf "$out/data"
	"$out/bin/gen_maildrop" "$out/data"
	echo "$stamp" > "$out/data/.stamp"
fi
exec python3 "$here/bench.py" "$@"
