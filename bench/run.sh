#!/bin/sh
# bench/run.sh - runs the benchmarks and writes bench/out/*.tsv.
# Timing, not testing: results vary with the machine; compare ratios measured
# in the same run.
set -eu
cd "$(dirname "$0")/.."
mkdir -p bench/out
echo "== reference interpreter vs libpcap bpf_filter (ns/packet, median of 7)" >&2
./bench/bench_interp | tee bench/out/interp.tsv
echo "== bpfkit filter vs tcpdump -w /dev/null, whole process (median of 7)" >&2
sh bench/bench_filter.sh
