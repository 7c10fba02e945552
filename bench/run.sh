#!/bin/sh
# bench/run.sh - runs the benchmarks (make bench) and writes bench/out/:
#   engines-gen.tsv   bench_interp on 100,000 bpfkit_gen packets (EN10MB, seed 1),
#                     medians of BENCH_PASSES (default 7) passes
#   engines-real.tsv  bench_interp on ../shared/pcaps/bench-real.pcap (skipped when absent)
#   engines.svg       both as a bar chart (python3; skipped without it)
#   filter.tsv        bench_filter.sh: whole-process bpfkit filter against tcpdump
#   opt-*.tsv         bench_opt: the optimizer's sizes, executed instructions and compile
#                     times against libpcap's (docs/optimizer-bench.md)
# When pkg-config knows libdpdk (Debian: dpdk-dev), bench_interp is rebuilt here with
# DPDK's JIT as the dpdk-jit row (the POSIX Makefile builds it without).
# Timing, not testing: results vary with the machine; compare ratios measured in one run.
set -eu
cd "$(dirname "$0")/.."
mkdir -p bench/out
SHARED=${BPFKIT_SHARED:-../shared}
# Passes of bench_interp (-k): each times every filter afresh (new programs, new JIT
# pages); the TSVs hold the medians.  One pass takes about a second per capture.
PASSES=${BENCH_PASSES:-7}
BENCH=./bench/bench_interp
if pkg-config --exists libdpdk 2>/dev/null; then
	# -falign-loops=64 as the Makefile builds bench_interp (docs/engines.md)
	if ${CC:-cc} -O2 -falign-loops=64 -DHAVE_DPDK -DALLOW_EXPERIMENTAL_API -Iinclude \
		$(pkg-config --cflags libdpdk) -o bench/out/bench_interp_dpdk \
		bench/bench_interp.c libbpfkit.a -lpcap -lm $(pkg-config --libs libdpdk); then
		BENCH=bench/out/bench_interp_dpdk
	else
		echo "bench: building with DPDK failed; no dpdk-jit rows" >&2
	fi
else
	echo "bench: libdpdk not found (apt-get install dpdk-dev); no dpdk-jit rows" >&2
fi
echo "== engines on 100,000 generated packets (ns/packet, ratio vs libpcap)" >&2
$BENCH -n 100000 -k "$PASSES" > bench/out/engines-gen.tsv
cat bench/out/engines-gen.tsv
charts="generated 100,000-packet mix=bench/out/engines-gen.tsv"
if [ -r "$SHARED/pcaps/bench-real.pcap" ]; then
	echo "== engines on $SHARED/pcaps/bench-real.pcap" >&2
	$BENCH -r "$SHARED/pcaps/bench-real.pcap" -k "$PASSES" > bench/out/engines-real.tsv
	cat bench/out/engines-real.tsv
else
	echo "bench: $SHARED/pcaps/bench-real.pcap absent; real-capture run skipped" >&2
fi
if command -v python3 >/dev/null 2>&1; then
	if [ -r bench/out/engines-real.tsv ]; then
		python3 bench/chart.py bench/out/engines.svg "$charts" \
			"bench-real.pcap=bench/out/engines-real.tsv"
	else
		python3 bench/chart.py bench/out/engines.svg "$charts"
	fi
	echo "bench: chart in bench/out/engines.svg" >&2
fi
echo "== bpfkit filter vs tcpdump -w /dev/null, whole process (median of 7)" >&2
sh bench/bench_filter.sh
echo "== optimizer: bpfkit -O2 against libpcap's optimizer (docs/optimizer-bench.md)" >&2
BPFKIT_SHARED=$SHARED ./bench/bench_opt -o bench/out
echo "== multi-filter matcher vs every rule alone (libpcap, bpfkit jit); 10..100,000 rules" >&2
./bench/bench_multi -n 100000 > bench/out/multi.tsv
cat bench/out/multi.tsv
if command -v python3 >/dev/null 2>&1; then
	python3 bench/chart_multi.py bench/out/multi.tsv bench/out/multi.svg
	echo "bench: chart in bench/out/multi.svg" >&2
fi
