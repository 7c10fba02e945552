#!/bin/sh
# with-namedb.sh SHARED TOOL [ARG...] - runs TOOL with the name-database lines of
# SHARED/corpus/namedb/*.test-lines visible in /etc/hosts, /etc/ethers and /etc/networks,
# as some rows of the libpcap corpus assume, without editing /etc: TOOL runs in a private
# mount namespace (unshare -m, else unshare -rm) where an overlay over /etc (or, failing
# that, bind mounts over the files that exist) shows copies of the real files with those
# lines appended.  Used by tests/difftest.sh and bench/bench_opt.
#
# Exit status: TOOL's, or 125 without running it when no namespace can be made here.
set -u
[ $# -ge 2 ] || { echo "usage: with-namedb.sh SHARED TOOL [ARG...]" >&2; exit 2; }
shared=$1
tool=$2
shift 2
tmp=$(mktemp -d /tmp/bpfkit-namedb-XXXXXX) || exit 2
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
	exit 125
fi
