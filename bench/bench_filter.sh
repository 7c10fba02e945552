#!/bin/sh
# bench/bench_filter.sh - whole-process speed of `bpfkit filter -c -p PROG -r CAPTURE`
# against `tcpdump -r CAPTURE -w /dev/null EXPR`, run from the repo root after `make`.
#
# The program is the one tcpdump runs: `tcpdump -ddd -r CAPTURE EXPR` (optimised, the
# capture's link type), so both tools filter with identical code; the verdict counts are
# checked to agree before timing.  Runs are interleaved (bpfkit, tcpdump, bpfkit, ...) after
# one warm-up each, RUNS times (default 7); the median wall time counts.  A capture with fewer
# than MIN_PACKETS (100000) packets is repeated (its records appended again) into bench/out/
# until it has enough.  A capture that is absent is skipped with a message.
#
# Output: a TSV on standard output and in bench/out/filter.tsv:
#   capture  tool  median_s  packets  GB_per_s  ratio  cpu_s  cpu_ratio
# median_s is the median wall time; GB/s is the capture's size over it; ratio is tcpdump's
# median over the tool's (higher is faster; tcpdump's row is 1.00).  cpu_s and cpu_ratio are
# the same for CPU time (user + system), steadier when other work shares the machine.
# POSIX sh and a C compiler (a small timer, rtime, is built on the fly).
set -eu
cd "$(dirname "$0")/.."
BPFKIT=${BPFKIT:-./bpfkit}
RUNS=${RUNS:-7}
MIN_PACKETS=${MIN_PACKETS:-100000}
SHARED=${BPFKIT_SHARED:-../shared}
EXPR=${BENCH_EXPR:-tcp port 80 or udp port 53}
OUT=bench/out/filter.tsv
mkdir -p bench/out

if ! command -v tcpdump >/dev/null 2>&1; then
	echo "bench_filter: tcpdump not installed; skipped" >&2
	exit 0
fi
[ -x "$BPFKIT" ] || { echo "bench_filter: $BPFKIT not built (make)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-filter.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# rtime CMD ARGS...: runs CMD (its output to /dev/null) and prints its wall time and its CPU
# time (user + system, from wait4's rusage), in nanoseconds.  CPU time is the steadier measure
# on a busy machine; wall time is what a user waits.
cat > "$tmp/rtime.c" <<'CEOF'
#define _DEFAULT_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	struct timespec a, b;
	struct rusage ru;
	int st;
	if (argc < 2)
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &a);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		dup2(fd, 2);
		execvp(argv[1], argv + 1);
		_exit(127);
	}
	if (pid < 0 || wait4(pid, &st, 0, &ru) < 0)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &b);
	long long wall = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
	long long cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
			(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
	printf("%lld %lld\n", wall, cpu);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
CEOF
${CC:-cc} -O2 -o "$tmp/rtime" "$tmp/rtime.c"

# median: the middle of the numbers on standard input.
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# packets CAPTURE: how many packets it holds (every packet matches without -p).
packets() { "$BPFKIT" filter -r "$1" | tail -n 1; }

# enlarge CAPTURE COPY: COPY is CAPTURE's pcap header and its records repeated until it
# holds MIN_PACKETS packets.
enlarge() {
	n=$(packets "$1")
	cp "$1" "$2"
	total=$n
	while [ "$total" -lt "$MIN_PACKETS" ]; do
		tail -c +25 "$1" >> "$2"
		total=$((total + n))
	done
}

printf 'capture\ttool\tmedian_s\tpackets\tGB_per_s\tratio\tcpu_s\tcpu_ratio\n' > "$tmp/tsv"

for name in bench-real.pcap bench-mix.pcap; do
	cap=$SHARED/pcaps/$name
	if [ ! -f "$cap" ]; then
		echo "bench_filter: $cap absent; skipped" >&2
		continue
	fi
	n=$(packets "$cap")
	if [ "$n" -lt "$MIN_PACKETS" ]; then
		big=bench/out/${name%.pcap}-x.pcap
		enlarge "$cap" "$big"
		echo "bench_filter: $name has $n packets; timing $big" >&2
		cap=$big
		n=$(packets "$cap")
	fi
	size=$(wc -c < "$cap" | tr -d ' ')
	tcpdump -ddd -r "$cap" "$EXPR" > "$tmp/prog.ddd" 2>/dev/null
	mine=$("$BPFKIT" filter -c -p "$tmp/prog.ddd" -r "$cap" | tail -n 1)
	theirs=$(tcpdump -r "$cap" -w - "$EXPR" 2>/dev/null | "$BPFKIT" filter | tail -n 1)
	if [ "$mine" != "$theirs" ]; then
		echo "bench_filter: $name: bpfkit matches $mine packets, tcpdump $theirs" >&2
		exit 1
	fi
	# Warm up the page cache, then interleave.
	"$BPFKIT" filter -c -p "$tmp/prog.ddd" -r "$cap" > /dev/null
	tcpdump -r "$cap" -w /dev/null "$EXPR" 2>/dev/null
	: > "$tmp/bpfkit.t"
	: > "$tmp/tcpdump.t"
	i=0
	while [ "$i" -lt "$RUNS" ]; do
		"$tmp/rtime" "$BPFKIT" filter -c -p "$tmp/prog.ddd" -r "$cap" >> "$tmp/bpfkit.t"
		"$tmp/rtime" tcpdump -r "$cap" -w /dev/null "$EXPR" >> "$tmp/tcpdump.t"
		i=$((i + 1))
	done
	mb=$(cut -d ' ' -f 1 "$tmp/bpfkit.t" | median)
	mt=$(cut -d ' ' -f 1 "$tmp/tcpdump.t" | median)
	cb=$(cut -d ' ' -f 2 "$tmp/bpfkit.t" | median)
	ct=$(cut -d ' ' -f 2 "$tmp/tcpdump.t" | median)
	for tool in bpfkit tcpdump; do
		m=$mb c=$cb
		[ "$tool" = tcpdump ] && m=$mt c=$ct
		awk -v f="$(basename "$cap")" -v t="$tool" -v m="$m" -v mt="$mt" -v n="$n" \
			-v s="$size" -v c="$c" -v ct="$ct" 'BEGIN {
				printf "%s\t%s\t%.4f\t%d\t%.2f\t%.2f\t%.4f\t%.2f\n", f, t, m / 1e9,
					n, s / m, mt / m, c / 1e9, (c > 0 ? ct / c : 0) }' >> "$tmp/tsv"
	done
done
cp "$tmp/tsv" "$OUT"
cat "$OUT"
