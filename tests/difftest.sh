#!/bin/sh
# difftest.sh - runs tests/difftest (docs/difftest.md) over the libpcap corpus and every
# tests/exprs/*.txt list, with the thresholds of issue 4 (>= 99% on every link type,
# 100% on EN10MB, RAW and LINUX_SLL).  Extra arguments go to the tool (e.g. -O2, --self).
#
# Name databases: the corpus rows marked needs_namedb assume the lines of
# ../shared/corpus/namedb/*.test-lines in /etc/hosts, /etc/ethers and /etc/networks.
# /etc is never edited: tests/with-namedb.sh runs the tool in a private mount namespace
# where copies of the real files with those lines appended show.  When that is not
# permitted the tool runs with --no-namedb and says so.
#
# Output: the summary on standard output; disagreements in $DIFFTEST_OUT/disagreements.tsv
# (default tests/difftest-out/).  Exit status: the tool's (0 pass, 1 below a threshold).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
shared=${BPFKIT_SHARED:-$top/../shared}
tool=$top/tests/difftest
out=${DIFFTEST_OUT:-$top/tests/difftest-out}
corpus=$shared/corpus/libpcap-filters.tsv
mkdir -p "$out" || exit 2
[ -x "$tool" ] || { echo "difftest.sh: build $tool first (make tests/difftest)" >&2; exit 2; }
[ -f "$corpus" ] || { echo "difftest.sh: no corpus at $corpus" >&2; exit 2; }
# A name that is not in the files goes to DNS: fail fast rather than wait.
RES_OPTIONS="timeout:1 attempts:1"
export RES_OPTIONS

set -- -c "$corpus" --pcaps "$shared/pcaps" --ltests "$shared/libpcap-tests/filter" \
	-o "$out/disagreements.tsv" -m 99 -M EN10MB=100 -M RAW=100 -M LINUX_SLL=100 "$@" \
	"$top"/tests/exprs/*.txt
echo "difftest.sh: $tool $*" >&2

sh "$top/tests/with-namedb.sh" "$shared" "$tool" "$@"
rc=$?
if [ "$rc" -eq 125 ]; then
	echo "difftest.sh: no private mount namespace here: rows needing name databases" \
		"are skipped" >&2
	"$tool" --no-namedb "$@"
	rc=$?
fi
exit "$rc"
