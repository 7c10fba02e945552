#!/bin/sh
# difftest.sh - runs tests/difftest (docs/difftest.md) over the libpcap corpus and every
# tests/exprs/*.txt list, with the thresholds of issue 4 (>= 99% on every link type,
# 100% on EN10MB, RAW and LINUX_SLL).  Extra arguments go to the tool (e.g. -O2, --self).
#
# Name databases: the corpus rows marked needs_namedb assume the lines of
# ../shared/corpus/namedb/*.test-lines in /etc/hosts, /etc/ethers and /etc/networks.
# /etc is never edited: the tool runs in a private mount namespace (unshare -m) where an
# overlay (or, failing that, bind mounts) shows copies of the real files with those lines
# appended.  When that is not permitted the tool runs with --no-namedb and says so.
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

tmp=$(mktemp -d /tmp/bpfkit-difftest-XXXXXX) || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir "$tmp/upper" "$tmp/work"
for f in hosts ethers networks; do
	if [ -f "/etc/$f" ]; then cat "/etc/$f"; fi > "$tmp/upper/$f"
	cat "$shared/corpus/namedb/$f.test-lines" >> "$tmp/upper/$f"
done

# Inside the namespace: overlay /etc (works even where /etc/ethers is missing), else bind
# the copies over the files that exist.  $0 is the tool, "$@" its arguments.
inner='t=$1; shift
if ! mount -t overlay overlay -o "lowerdir=/etc,upperdir=$t/upper,workdir=$t/work" /etc \
	2>/dev/null; then
	for f in hosts ethers networks; do
		[ -f /etc/$f ] && mount --bind "$t/upper/$f" /etc/$f
	done
fi
exec "$0" "$@"'

if unshare -m true 2>/dev/null; then
	unshare -m sh -c "$inner" "$tool" "$tmp" "$@"
elif unshare -rm true 2>/dev/null; then
	unshare -rm sh -c "$inner" "$tool" "$tmp" "$@"
else
	echo "difftest.sh: no private mount namespace here: rows needing name databases" \
		"are skipped" >&2
	"$tool" --no-namedb "$@"
fi
