#!/bin/sh
# fuzz/run.sh SECONDS [CC] - builds every libFuzzer target with ASan+UBSan and
# runs each for SECONDS, two at a time (one per core).  Working corpora live in
# fuzz/bin/corpus-NAME (not committed), seeded from fuzz/corpus/NAME; crashes
# are written to fuzz/bin/ and make the script fail.
set -eu
secs=${1:-60}
cc=${2:-clang}
cd "$(dirname "$0")/.."
mkdir -p fuzz/bin
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude -Isrc"
targets="capture asm read_auto read_ddd read_iptables read_c read_listing read_json read_raw engines compile optimize multi"
for t in $targets; do
	case $t in
	asm) src=fuzz/fuzz_asm.c; def= ;;
	capture) src=fuzz/fuzz_capture.c; def= ;;
	engines) src=fuzz/fuzz_engines.c; def= ;;
	compile) src=fuzz/fuzz_compile.c; def= ;;
	multi) src=fuzz/fuzz_multi.c; def= ;;
	optimize) src="fuzz/fuzz_optimize.c tests/exprgen.c"; def= ;;
	*) src=fuzz/fuzz_read.c; def="-DFUZZ_FORMAT=${t#read_}" ;;
	esac
	$cc $flags $def -D_DEFAULT_SOURCE -std=c11 -o fuzz/bin/fuzz-$t $src src/*.c
done
run_one() {
	t=$1
	mkdir -p fuzz/bin/corpus-$t
	echo "fuzz: $t for ${secs}s" >&2
	fuzz/bin/fuzz-$t -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix=fuzz/bin/$t- fuzz/bin/corpus-$t fuzz/corpus/$t \
		>fuzz/bin/$t.log 2>&1 || { echo "fuzz: $t FAILED, see fuzz/bin/$t.log" >&2; return 1; }
	grep -E 'stat::number_of_executed_units' fuzz/bin/$t.log | sed "s/^/fuzz: $t /" >&2
}
status=0
set -- $targets
while [ $# -gt 0 ]; do
	a=$1; shift
	if [ $# -gt 0 ]; then
		b=$1; shift
		run_one "$a" & pa=$!
		run_one "$b" || status=1
		wait $pa || status=1
	else
		run_one "$a" || status=1
	fi
done
exit $status
