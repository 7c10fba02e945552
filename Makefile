# bpfkit - classic BPF toolchain.  A POSIX Makefile: no GNU extensions.
#
#   make                 library (static and shared) and the bpfkit command
#   make check           the whole test suite (needs libpcap-dev: the oracle)
#   make check SANITIZE=1  the same under ASan + UBSan
#   make demo            a tour of what bpfkit does, on data it makes itself
#   make bench           benchmarks against libpcap (results in bench/out/)
#   make fuzz            libFuzzer targets (clang), each run for FUZZ_TIME seconds
#   make install         PREFIX=/usr/local DESTDIR= LIBDIR= ...

.POSIX:
.SUFFIXES:

CC = cc
CFLAGS = -O2 -g
LDFLAGS =
PREFIX = /usr/local
LIBDIR = $(PREFIX)/lib
INCLUDEDIR = $(PREFIX)/include
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
DESTDIR =
SANITIZE = 0
FUZZ_TIME = 60
FUZZ_CC = clang
PCAP_LIBS = -lpcap

VERSION = 0.1.0
SOVERSION = 0

SAN_FLAGS_0 =
SAN_FLAGS_1 = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_FLAGS = $(SAN_FLAGS_$(SANITIZE))

WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
BK_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -Iinclude -Isrc $(WARN) $(SAN_FLAGS) $(CFLAGS)
LIB_CFLAGS = $(BK_CFLAGS) -fPIC -fvisibility=hidden
BK_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)

LIB_OBJS = src/mem.o src/error.o src/opcode.o src/asm.o src/disasm.o src/progread.o \
	src/validate.o src/interp.o src/pcapio.o src/gen.o \
	src/lex.o src/parse.o src/codegen.o src/ir.o src/emit.o src/compile.o src/linktype.o \
	src/names.o src/opt.o src/opt_val.o src/opt_thread.o src/opt_vn.o \
	src/opt_dce.o src/opt_merge.o src/opt_pullup.o src/opt_switch.o src/opt_order.o src/opt_promote.o src/fast.o src/jit_x86_64.o src/codegen_link.o src/codegen_wlan.o \
	src/multi.o
TOOL_OBJS = tools/bpfkit.o
TEST_OBJS = tests/main.o tests/test_asm.o tests/test_format.o tests/test_validate.o \
	tests/test_kernel.o tests/test_interp.o tests/test_alloc.o tests/test_cli.o \
	tests/test_fuzz.o tests/randprog.o tests/packets.o tests/test_pcapio.o tests/test_filter.o tests/test_gen.o \
	tests/test_compile.o tests/test_compile_link.o \
	tests/test_engines.o tests/test_difftest.o tests/test_jit.o \
	tests/test_optimize.o tests/exprgen.o tests/test_multi.o
FUZZ_TARGETS = capture asm read_auto read_ddd read_iptables read_c read_listing read_json read_raw \
	engines compile optimize multi
FUZZ_REPLAYS = fuzz/replay-capture fuzz/replay-asm fuzz/replay-read_auto fuzz/replay-read_ddd \
	fuzz/replay-read_iptables fuzz/replay-read_c fuzz/replay-read_listing \
	fuzz/replay-read_json fuzz/replay-read_raw fuzz/replay-engines fuzz/replay-compile \
	fuzz/replay-optimize fuzz/replay-multi
HDRS = include/bpfkit.h src/internal.h src/opt.h src/opcodes.h src/proto.h src/fast_body.h .build-flags

all: libbpfkit.a libbpfkit.so bpfkit

# Objects are rebuilt whenever the compiler or flags change (SANITIZE=1 vs 0).
.build-flags: FORCE
	@echo '$(CC) $(BK_CFLAGS) $(BK_LDFLAGS)' > .build-flags.new; \
	if cmp -s .build-flags .build-flags.new; then rm -f .build-flags.new; \
	else mv .build-flags.new .build-flags; fi
FORCE:

.SUFFIXES: .c .o
.c.o:
	$(CC) $(LIB_CFLAGS) -c -o $@ $<

$(LIB_OBJS) $(TOOL_OBJS): $(HDRS)
$(TEST_OBJS): $(HDRS) tests/harness.h tests/randprog.h tests/packets.h tests/engines.h
tests/test_optimize.o tests/exprgen.o: tests/exprgen.h

libbpfkit.a: $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $(LIB_OBJS)

libbpfkit.so: $(LIB_OBJS)
	$(CC) -shared -Wl,-soname,libbpfkit.so.$(SOVERSION) $(BK_LDFLAGS) -o $@ $(LIB_OBJS)

# The timing loops (bpfkit bench, bench/bench_interp) each start on a 64-byte
# line: where the linker happened to put a loop moved the time of identical
# code by 8% (docs/engines.md, "Loop alignment").
BENCH_ALIGN = -falign-loops=64
tools/bpfkit.o: tools/bpfkit.c
	$(CC) $(LIB_CFLAGS) $(BENCH_ALIGN) -c -o $@ tools/bpfkit.c

bpfkit: $(TOOL_OBJS) libbpfkit.a
	$(CC) $(BK_LDFLAGS) -o $@ $(TOOL_OBJS) libbpfkit.a

# Generated at install time, so PREFIX and LIBDIR given to `make install` count.
bpfkit.pc: FORCE
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' bpfkit.pc.in > $@

tests/run: $(TEST_OBJS) libbpfkit.a
	$(CC) $(BK_LDFLAGS) -o $@ $(TEST_OBJS) libbpfkit.a $(PCAP_LIBS)

# The differential test of the compiler against libpcap (docs/difftest.md).
tests/difftest: tests/difftest.c tests/corpus.c tests/corpus.h libbpfkit.a $(HDRS)
	$(CC) $(BK_CFLAGS) $(BK_LDFLAGS) -o $@ tests/difftest.c tests/corpus.c libbpfkit.a $(PCAP_LIBS)

difftest: tests/difftest
	sh tests/difftest.sh

# Fuzz targets also build as plain programs that replay their corpus.
$(FUZZ_REPLAYS): fuzz/replay.c fuzz/fuzz_asm.c fuzz/fuzz_read.c fuzz/fuzz_capture.c libbpfkit.a \
		fuzz/fuzz_engines.c tests/engines.h fuzz/fuzz_compile.c fuzz/fuzz_optimize.c tests/exprgen.c \
		tests/exprgen.h fuzz/fuzz_multi.c $(HDRS)
	t=`echo $@ | sed 's|fuzz/replay-||'`; \
	case $$t in asm) src=fuzz/fuzz_asm.c; fmt=;; \
	capture) src=fuzz/fuzz_capture.c; fmt=;; \
	engines) src=fuzz/fuzz_engines.c; fmt=;; \
	compile) src=fuzz/fuzz_compile.c; fmt=;; \
	optimize) src='fuzz/fuzz_optimize.c tests/exprgen.c'; fmt=;; \
	multi) src=fuzz/fuzz_multi.c; fmt=;; \
	*) src=fuzz/fuzz_read.c; fmt="-DFUZZ_FORMAT=`echo $$t | sed 's/read_//'`";; esac; \
	$(CC) $(BK_CFLAGS) $$fmt -o $@ fuzz/replay.c $$src libbpfkit.a

check: all tests/run tests/difftest $(FUZZ_REPLAYS)
	./tests/run

demo: bpfkit
	sh tools/demo.sh

bench: all bench/bench_interp bench/bench_opt bench/bench_multi
	sh bench/run.sh

bench/bench_interp: bench/bench_interp.c libbpfkit.a $(HDRS)
	$(CC) $(BK_CFLAGS) $(BENCH_ALIGN) -o $@ bench/bench_interp.c libbpfkit.a $(PCAP_LIBS) -lm

# The optimizer's figures against libpcap (docs/optimizer-bench.md).
bench/bench_opt: bench/bench_opt.c tests/corpus.c tests/corpus.h libbpfkit.a $(HDRS)
	$(CC) $(BK_CFLAGS) -Itests -o $@ bench/bench_opt.c tests/corpus.c libbpfkit.a $(PCAP_LIBS) -lm

# The multi-filter matcher against per-rule libpcap and JIT (docs/multi.md).
bench/bench_multi: bench/bench_multi.c libbpfkit.a $(HDRS)
	$(CC) $(BK_CFLAGS) -o $@ bench/bench_multi.c libbpfkit.a $(PCAP_LIBS)

fuzz: FORCE
	sh fuzz/run.sh $(FUZZ_TIME) $(FUZZ_CC)

install: all bpfkit.pc
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(MANDIR)/man1
	cp bpfkit $(DESTDIR)$(BINDIR)/bpfkit
	cp include/bpfkit.h $(DESTDIR)$(INCLUDEDIR)/bpfkit.h
	cp libbpfkit.a $(DESTDIR)$(LIBDIR)/libbpfkit.a
	cp libbpfkit.so $(DESTDIR)$(LIBDIR)/libbpfkit.so.$(VERSION)
	ln -sf libbpfkit.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libbpfkit.so.$(SOVERSION)
	ln -sf libbpfkit.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libbpfkit.so
	cp bpfkit.pc $(DESTDIR)$(LIBDIR)/pkgconfig/bpfkit.pc
	cp docs/bpfkit.1 $(DESTDIR)$(MANDIR)/man1/bpfkit.1

clean:
	rm -f $(LIB_OBJS) $(TOOL_OBJS) $(TEST_OBJS) libbpfkit.a libbpfkit.so bpfkit bpfkit.pc \
		tests/run tests/difftest bench/bench_interp bench/bench_opt bench/bench_multi $(FUZZ_REPLAYS) .build-flags .build-flags.new
	rm -rf fuzz/bin bench/out
