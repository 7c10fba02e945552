/*
 * bpfkit.h - the one public header of libbpfkit, a classic-BPF toolchain.
 *
 * Programs are plain data: an array of struct bpfkit_insn, laid out exactly
 * like the kernel's struct sock_filter and libpcap's struct bpf_insn, so they
 * pass to either without conversion.
 *
 * Conventions: fallible calls return 0 on success and -1 on failure (or NULL)
 * and then fill the caller's struct bpfkit_error.  The library keeps no global
 * state, never prints and never exits.  Memory comes from an optional
 * allocation hook (struct bpfkit_alloc); NULL means the C library's.
 */
#ifndef BPFKIT_PUBLIC_H
#define BPFKIT_PUBLIC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(BPFKIT_BUILDING)
#define BPFKIT_API __attribute__((visibility("default")))
#else
#define BPFKIT_API
#endif

#define BPFKIT_VERSION "0.1.0"

/* ------------------------------------------------------------------ */
/* Instructions                                                        */

struct bpfkit_insn {
	uint16_t code;
	uint8_t jt;
	uint8_t jf;
	uint32_t k;
};

struct bpfkit_prog {
	struct bpfkit_insn *insns;
	size_t len;
};

/* Instruction classes and fields (the classic encoding). */
#define BPFKIT_CLASS(c) ((c) & 0x07)
#define BPFKIT_LD   0x00
#define BPFKIT_LDX  0x01
#define BPFKIT_ST   0x02
#define BPFKIT_STX  0x03
#define BPFKIT_ALU  0x04
#define BPFKIT_JMP  0x05
#define BPFKIT_RET  0x06
#define BPFKIT_MISC 0x07

#define BPFKIT_SIZE(c) ((c) & 0x18)
#define BPFKIT_W 0x00
#define BPFKIT_H 0x08
#define BPFKIT_B 0x10

#define BPFKIT_MODE(c) ((c) & 0xe0)
#define BPFKIT_IMM 0x00
#define BPFKIT_ABS 0x20
#define BPFKIT_IND 0x40
#define BPFKIT_MEM 0x60
#define BPFKIT_LEN 0x80
#define BPFKIT_MSH 0xa0

#define BPFKIT_OP(c) ((c) & 0xf0)
#define BPFKIT_ADD  0x00
#define BPFKIT_SUB  0x10
#define BPFKIT_MUL  0x20
#define BPFKIT_DIV  0x30
#define BPFKIT_OR   0x40
#define BPFKIT_AND  0x50
#define BPFKIT_LSH  0x60
#define BPFKIT_RSH  0x70
#define BPFKIT_NEG  0x80
#define BPFKIT_MOD  0x90
#define BPFKIT_XOR  0xa0
#define BPFKIT_JA   0x00
#define BPFKIT_JEQ  0x10
#define BPFKIT_JGT  0x20
#define BPFKIT_JGE  0x30
#define BPFKIT_JSET 0x40

#define BPFKIT_SRC(c) ((c) & 0x08)
#define BPFKIT_K 0x00
#define BPFKIT_X 0x08
#define BPFKIT_RVAL(c) ((c) & 0x18)
#define BPFKIT_A 0x10
#define BPFKIT_MISCOP(c) ((c) & 0xf8)
#define BPFKIT_TAX 0x00
#define BPFKIT_TXA 0x80

#define BPFKIT_MEMWORDS 16
#define BPFKIT_MAXINSNS 4096

/* Linux negative offsets: link layer, network layer, ancillary data. */
#define BPFKIT_SKF_LL_OFF  0xffe00000u
#define BPFKIT_SKF_NET_OFF 0xfff00000u
#define BPFKIT_SKF_AD_OFF  0xfffff000u
enum bpfkit_anc {
	BPFKIT_AD_PROTOCOL = 0,
	BPFKIT_AD_PKTTYPE = 4,
	BPFKIT_AD_IFINDEX = 8,
	BPFKIT_AD_NLATTR = 12,
	BPFKIT_AD_NLATTR_NEST = 16,
	BPFKIT_AD_MARK = 20,
	BPFKIT_AD_QUEUE = 24,
	BPFKIT_AD_HATYPE = 28,
	BPFKIT_AD_RXHASH = 32,
	BPFKIT_AD_CPU = 36,
	BPFKIT_AD_ALU_XOR_X = 40,
	BPFKIT_AD_VLAN_TAG = 44,
	BPFKIT_AD_VLAN_TAG_PRESENT = 48,
	BPFKIT_AD_PAY_OFFSET = 52,
	BPFKIT_AD_RANDOM = 56,
	BPFKIT_AD_VLAN_TPID = 60,
	BPFKIT_AD_MAX = 64
};

/* ------------------------------------------------------------------ */
/* Errors and memory                                                   */

struct bpfkit_error {
	char message[256];
	int line;      /* 1-based source line, 0 when not about text */
	int column;    /* 1-based column of the span's start, 0 when none */
	int span;      /* columns covered by the offending text, >= 1 when column is set */
	long insn;     /* instruction index, -1 when not about an instruction */
	long long offset; /* byte offset in the input, -1 when none */
};

/*
 * The allocation hook: realloc-like.  fn(ud, NULL, n) allocates, fn(ud, p, n)
 * resizes, fn(ud, p, 0) frees and returns NULL.  A NULL hook (or a NULL
 * pointer to one) means malloc/realloc/free.
 */
struct bpfkit_alloc {
	void *(*fn)(void *ud, void *ptr, size_t size);
	void *ud;
};

/* Frees memory the library handed out (programs' insns, formatted text). */
BPFKIT_API void bpfkit_free(const struct bpfkit_alloc *alloc, void *ptr);
BPFKIT_API void bpfkit_prog_free(const struct bpfkit_alloc *alloc, struct bpfkit_prog *prog);

/* ------------------------------------------------------------------ */
/* Program formats                                                     */

enum bpfkit_format {
	BPFKIT_FMT_AUTO = 0, /* readers only: detect from content */
	BPFKIT_FMT_ASM,      /* bpf_asm source with labels */
	BPFKIT_FMT_LISTING,  /* tcpdump -d */
	BPFKIT_FMT_C,        /* tcpdump -dd */
	BPFKIT_FMT_DDD,      /* tcpdump -ddd */
	BPFKIT_FMT_IPTABLES, /* xt_bpf "N,code jt jf k,..." */
	BPFKIT_FMT_RAW,      /* binary struct sock_filter array, host order */
	BPFKIT_FMT_JSON,
	BPFKIT_FMT_DOT       /* Graphviz control-flow graph; write only */
};

/* "asm", "listing", ... -> format; -1 when unknown. */
BPFKIT_API int bpfkit_format_parse(const char *name);
BPFKIT_API const char *bpfkit_format_name(enum bpfkit_format fmt);

/*
 * Assembles bpf_asm source (the syntax of the Linux kernel's tools/bpf/bpf_asm)
 * into *out.  Errors carry line, column and span.
 */
BPFKIT_API int bpfkit_asm(const char *src, size_t len, const struct bpfkit_alloc *alloc,
			  struct bpfkit_prog *out, struct bpfkit_error *err);

/*
 * Reads a program in format fmt (BPFKIT_FMT_AUTO detects ddd, iptables, C
 * array, listing, JSON, raw and bpf_asm from the content).  When detected is
 * not NULL it receives the format that was read.
 */
BPFKIT_API int bpfkit_prog_read(const void *data, size_t len, enum bpfkit_format fmt,
				const struct bpfkit_alloc *alloc, struct bpfkit_prog *out,
				enum bpfkit_format *detected, struct bpfkit_error *err);

/*
 * Formats a program.  *text receives a NUL-terminated buffer (binary for
 * BPFKIT_FMT_RAW; *len excludes the terminator) to free with bpfkit_free().
 */
BPFKIT_API int bpfkit_prog_format(const struct bpfkit_insn *insns, size_t n,
				  enum bpfkit_format fmt, const struct bpfkit_alloc *alloc,
				  char **text, size_t *len, struct bpfkit_error *err);

/* ------------------------------------------------------------------ */
/* Validation                                                          */

enum bpfkit_vmode {
	BPFKIT_VALIDATE_SOCKET = 0, /* Linux SO_ATTACH_FILTER rules */
	BPFKIT_VALIDATE_PCAP,       /* libpcap's bpf_validate rules */
	BPFKIT_VALIDATE_SECCOMP     /* Linux seccomp filter rules */
};

/* 0 when valid; -1 with err->insn and err->message naming the broken rule. */
BPFKIT_API int bpfkit_validate(const struct bpfkit_insn *insns, size_t n, enum bpfkit_vmode mode,
			       struct bpfkit_error *err);

/* ------------------------------------------------------------------ */
/* Reference interpreter                                               */

/*
 * What the Linux ancillary loads (SKF_AD_OFF + n) read.  NLATTR and
 * NLATTR_NEST are computed from the packet bytes, as the kernel does.
 * net_offset is where SKF_NET_OFF-relative loads start in the packet.
 */
struct bpfkit_meta {
	uint32_t protocol;   /* skb->protocol, network byte order value as a number */
	uint32_t pkttype;
	uint32_t ifindex;
	uint32_t mark;
	uint32_t queue;
	uint32_t hatype;
	uint32_t rxhash;
	uint32_t cpu;
	uint32_t vlan_tci;
	uint32_t vlan_avail;
	uint32_t vlan_tpid;
	uint32_t pay_offset;
	uint32_t random;
	uint32_t net_offset;
};

struct bpfkit_trace {
	size_t pc;                /* index of the instruction just executed */
	struct bpfkit_insn insn;
	uint32_t a, x;            /* registers after it ran */
	int branch;               /* conditional jumps: 1 taken (jt), 0 not (jf); else -1 */
	int done;                 /* 1 when it ended the program */
	uint32_t ret;             /* the return value when done */
};
typedef void (*bpfkit_trace_fn)(void *ctx, const struct bpfkit_trace *t);

/*
 * Runs a program on one packet: caplen bytes at pkt, wire length wirelen.
 * With meta == NULL the semantics are libpcap's (no ancillary loads: such
 * offsets are ordinary loads past the packet); with meta, Linux's.  A load
 * past caplen and a division or modulo by a zero X return 0.  Any program is
 * safe to run: an invalid instruction or jump returns 0.
 */
BPFKIT_API uint32_t bpfkit_interp(const struct bpfkit_insn *insns, size_t n, const uint8_t *pkt,
				  uint32_t caplen, uint32_t wirelen, const struct bpfkit_meta *meta);
/* The same, calling trace after every instruction. */
BPFKIT_API uint32_t bpfkit_interp_trace(const struct bpfkit_insn *insns, size_t n,
					const uint8_t *pkt, uint32_t caplen, uint32_t wirelen,
					const struct bpfkit_meta *meta, bpfkit_trace_fn trace,
					void *ctx);

/* ------------------------------------------------------------------ */
/* Opcode table queries                                                */

/* The opcode table's name for code ("LD_H_ABS"), NULL when the code is unknown. */
BPFKIT_API const char *bpfkit_opcode_name(uint16_t code);
/* Ancillary load name for offset k ("proto", "vlan_tci"), NULL when not one. */
BPFKIT_API const char *bpfkit_anc_name(uint32_t k);

/* ------------------------------------------------------------------ */
/* Captures                                                            */

/*
 * Streaming pcap and pcapng reader and writer (docs/captures.md).  Memory stays
 * bounded: the reader's buffer grows only to the largest record present and
 * never past BPFKIT_CAPTURE_MAX_RECORD.  Errors name the byte offset of the
 * offending field in err->offset.
 */
#define BPFKIT_CAPTURE_MAX_RECORD (256u << 20)

enum bpfkit_capture_format {
	BPFKIT_CAPTURE_PCAP = 1,
	BPFKIT_CAPTURE_PCAPNG = 2
};

/* Reader flags. */
enum {
	/*
	 * By default a record whose caplen exceeds its snaplen (but not 262144)
	 * keeps its first snaplen bytes, as libpcap does, so packets and verdicts
	 * match libpcap's; beyond 262144 it is an error.  With this flag any
	 * caplen above the snaplen is an error.  (pcapng: always an error, as
	 * in libpcap.)
	 */
	BPFKIT_CAPTURE_STRICT_SNAPLEN = 1
};

/* The file header (pcap) or first section header (pcapng). */
struct bpfkit_capture_header {
	enum bpfkit_capture_format format;
	uint16_t version_major, version_minor;
	int big_endian;            /* byte order of the file (of the current section) */
	/* pcap only: */
	uint32_t snaplen;          /* 0 means no limit */
	uint32_t linktype_field;   /* the raw 32-bit field, FCS bits included */
	uint32_t linktype;         /* its low 16 bits */
	int fcslen;                /* FCS bytes from the field's FCS bits, -1 unknown */
	uint64_t ts_units;         /* 1000000 (magic a1b2c3d4) or 1000000000 (a1b23c4d) */
	int32_t thiszone;          /* the header's (unused) time zone and accuracy fields */
	uint32_t sigfigs;
};

/* An interface: pcapng's IDB; a pcap file has one, made from its header. */
struct bpfkit_capture_iface {
	uint32_t linktype;
	uint32_t snaplen;          /* 0 means no limit */
	uint64_t ts_units;         /* timestamp ticks per second */
	uint8_t tsresol;           /* the if_tsresol byte (6 when absent, 9 for ns pcap) */
	int fcslen;                /* if_fcslen in bytes, -1 unknown */
	int64_t tsoffset;          /* if_tsoffset: seconds added to every timestamp */
	uint32_t section;          /* pcapng section number, from 0 */
	uint32_t index;            /* interface id within its section */
};

/*
 * One packet, valid until the next call on the reader.  The timestamp is
 * ts_sec + ts_frac / ts_units seconds.  pcap keeps its seconds and fraction
 * fields as stored (even a fraction >= ts_units); pcapng's 64-bit count T
 * becomes ts_sec = T / units + tsoffset, ts_frac = T % units.
 */
struct bpfkit_packet {
	const uint8_t *data;
	uint32_t caplen;
	uint32_t wirelen;
	int64_t ts_sec;
	uint64_t ts_frac;
	uint64_t ts_units;
	uint32_t linktype;
	const struct bpfkit_capture_iface *iface;
	long long offset;          /* byte offset of the record or block */
};

/* The timestamp in nanoseconds since the epoch (rounded down). */
BPFKIT_API int64_t bpfkit_packet_ns(const struct bpfkit_packet *pkt);

struct bpfkit_capture;

/*
 * The reader's source: read up to size bytes into buf; return the count, 0 at
 * end of input, -1 on failure.  Short reads are fine (pipes).
 */
typedef long (*bpfkit_capture_read_fn)(void *ctx, void *buf, size_t size);

/* Opening reads and checks the file header (or first section header). */
BPFKIT_API int bpfkit_capture_open(bpfkit_capture_read_fn fn, void *ctx, unsigned flags,
				   const struct bpfkit_alloc *alloc, struct bpfkit_capture **out,
				   struct bpfkit_error *err);
/* read(2) on fd, which may be a pipe; the caller keeps and closes fd. */
BPFKIT_API int bpfkit_capture_open_fd(int fd, unsigned flags, const struct bpfkit_alloc *alloc,
				      struct bpfkit_capture **out, struct bpfkit_error *err);
/* A capture in memory (e.g. mmap'd); read in place, no copy.  data must outlive it. */
BPFKIT_API int bpfkit_capture_open_mem(const void *data, size_t len, unsigned flags,
				       const struct bpfkit_alloc *alloc,
				       struct bpfkit_capture **out, struct bpfkit_error *err);
/*
 * The next packet: 1 and *pkt filled, 0 at a clean end of input, -1 on error
 * (err names the byte offset; a record cut short by the end of input says how
 * many packets came before it).  After -1 or 0 every later call repeats it.
 */
BPFKIT_API int bpfkit_capture_next(struct bpfkit_capture *c, struct bpfkit_packet *pkt,
				   struct bpfkit_error *err);
BPFKIT_API const struct bpfkit_capture_header *bpfkit_capture_header(
	const struct bpfkit_capture *c);
/* Interfaces of the current section (pcap: exactly one). */
BPFKIT_API size_t bpfkit_capture_iface_count(const struct bpfkit_capture *c);
BPFKIT_API const struct bpfkit_capture_iface *bpfkit_capture_iface(const struct bpfkit_capture *c,
								   size_t i);
/* Packets returned so far. */
BPFKIT_API uint64_t bpfkit_capture_packets(const struct bpfkit_capture *c);
BPFKIT_API void bpfkit_capture_close(struct bpfkit_capture *c);

struct bpfkit_capture_writer;

/* The writer's sink: write all len bytes; 0 on success, -1 on failure. */
typedef int (*bpfkit_capture_write_fn)(void *ctx, const void *data, size_t len);

/*
 * Writes a capture in host byte order.  pcap: the header gets hdr's version,
 * snaplen, linktype_field and resolution (ts_units 1000000 or 1000000000).
 * pcapng: one section; hdr's other fields are ignored, an IDB is written for
 * each interface (pkt->iface) when its first packet is written, and each EPB
 * keeps its interface's resolution, so timestamps, wire lengths and bytes
 * read back identical.  The writer never renames or syncs: a caller that
 * replaces a file writes a temporary beside it and renames it on success.
 */
BPFKIT_API int bpfkit_capture_writer_open(const struct bpfkit_capture_header *hdr,
					  bpfkit_capture_write_fn fn, void *ctx,
					  const struct bpfkit_alloc *alloc,
					  struct bpfkit_capture_writer **out,
					  struct bpfkit_error *err);
BPFKIT_API int bpfkit_capture_writer_open_fd(const struct bpfkit_capture_header *hdr, int fd,
					     const struct bpfkit_alloc *alloc,
					     struct bpfkit_capture_writer **out,
					     struct bpfkit_error *err);
/* Appends one packet (buffered).  pcap refuses another link type or caplen > snaplen. */
BPFKIT_API int bpfkit_capture_write(struct bpfkit_capture_writer *w,
				    const struct bpfkit_packet *pkt, struct bpfkit_error *err);
/*
 * pcapng: writes the IDB of ifc now unless one for it exists (pcap: nothing).
 * libpcap refuses a pcapng file without any IDB, so a caller whose output may
 * hold no packets declares the input's first interface before closing.
 */
BPFKIT_API int bpfkit_capture_writer_iface(struct bpfkit_capture_writer *w,
					   const struct bpfkit_capture_iface *ifc,
					   struct bpfkit_error *err);
/* Flushes and frees (always frees); -1 when a write failed, now or before. */
BPFKIT_API int bpfkit_capture_writer_close(struct bpfkit_capture_writer *w,
					   struct bpfkit_error *err);

/* ------------------------------------------------------------------ */
/* Packet generator                                                    */

/*
 * A deterministic source of realistic packets (docs/gen.md): IPv4/IPv6 with
 * extension headers, options and fragments, TCP, UDP, DNS, ICMP(v6), ARP,
 * VLAN, QinQ, MPLS, PPPoE, GRE, VXLAN, Geneve, SCTP, IGMP, LLC/SNAP, with
 * valid checksums.  The same seed gives the same packets and timestamps on
 * every run and machine (DLT_NULL's family field excepted: it is in host
 * byte order, like the capture files the writer produces).
 */
#define BPFKIT_GEN_MAX_FRAME 1600  /* no generated packet is longer */

struct bpfkit_gen;

/* 1 for the link types it makes: EN10MB (1), RAW (101), LINUX_SLL (113), NULL (0). */
BPFKIT_API int bpfkit_gen_supported(uint32_t linktype);
BPFKIT_API int bpfkit_gen_new(uint32_t linktype, uint64_t seed, const struct bpfkit_alloc *alloc,
			      struct bpfkit_gen **out, struct bpfkit_error *err);
/* Cuts caplen to snaplen (the wire length stays); 0, the default, means no cut. */
BPFKIT_API void bpfkit_gen_set_snaplen(struct bpfkit_gen *g, uint32_t snaplen);
/*
 * Writes the next packet into buf (size >= BPFKIT_GEN_MAX_FRAME, or >= the
 * snaplen when smaller) and describes it in *pkt: data = buf, caplen, wirelen,
 * a nanosecond timestamp (ts_units 1000000000), linktype; iface NULL.
 */
BPFKIT_API int bpfkit_gen_next(struct bpfkit_gen *g, uint8_t *buf, size_t size,
			       struct bpfkit_packet *pkt, struct bpfkit_error *err);
BPFKIT_API void bpfkit_gen_free(struct bpfkit_gen *g);

/* ------------------------------------------------------------------ */
/* The pcap-filter compiler                                            */

/*
 * Link types: a libpcap DLT name without "DLT_" (case-insensitive) or a
 * number -> the DLT value, -1 when unknown; and back (NULL when unknown).
 */
BPFKIT_API int bpfkit_linktype_parse(const char *name);
BPFKIT_API const char *bpfkit_linktype_name(int dlt);

struct bpfkit_compile_opts {
	int linktype;          /* DLT value; 1 (EN10MB) when the struct is NULL */
	uint32_t snaplen;      /* value an accepting program returns; 0 = 262144 */
	int optimize;          /* 0: straightforward program; 1, 2: optimized (2 default) */
	uint32_t netmask;      /* for "ip broadcast"; 0 = unknown unless BPFKIT_COMPILE_NETMASK */
	const struct bpfkit_alloc *alloc;
	unsigned flags;        /* BPFKIT_COMPILE_* */
};

/*
 * Host names are not looked up (they are an error): getaddrinfo may ask DNS,
 * which a fuzzer or a sandbox should not.  Services, protocols, networks and
 * ethers come from local files and are still resolved.
 */
#define BPFKIT_COMPILE_NO_HOST_LOOKUP 0x1u
/*
 * netmask is set, 0.0.0.0 included (as libpcap, 0xffffffff still means unknown).
 * Without this flag a netmask of 0 means unknown.
 */
#define BPFKIT_COMPILE_NETMASK 0x2u

/*
 * Compiles a pcap-filter(7) expression (libpcap's language and meaning) into
 * *out.  Errors carry the 1-based column and span in the expression (line 1;
 * or the line for multi-line expressions).  opts may be NULL for defaults.
 */
BPFKIT_API int bpfkit_compile(const char *expr, const struct bpfkit_compile_opts *opts,
			      struct bpfkit_prog *out, struct bpfkit_error *err);

/*
 * The optimizer's passes by name, NULL-terminated: "codegen" (the IR before
 * any pass), then each pass of -O1/-O2 (docs/optimizer.md).
 */
BPFKIT_API const char *const *bpfkit_compile_passes(void);
/*
 * Compiles like bpfkit_compile and returns in *text (free with bpfkit_free)
 * the IR after each run of the pass named pass, as text (bpfkit compile
 * --dump-ir=PASS).  An unknown pass is an error.
 */
BPFKIT_API int bpfkit_compile_dump(const char *expr, const struct bpfkit_compile_opts *opts,
				   const char *pass, char **text, struct bpfkit_error *err);

/* ------------------------------------------------------------------ */
/* Engines                                                             */

/*
 * The fast interpreter (docs/engines.md): prepare once, run per packet.  It
 * returns exactly what bpfkit_interp returns.  Prepare rejects, with the
 * validator's message, programs that bpfkit_validate refuses in pcap mode
 * (libpcap dialect, the default) or in socket mode (BPFKIT_FAST_LINUX: the
 * Linux dialect, ancillary loads included), so run needs no checks on the
 * program.  The handle holds no pointer to insns; it is read-only while
 * running, so threads may share it.
 */
struct bpfkit_fast;

enum {
	BPFKIT_FAST_LINUX = 1  /* Linux dialect (bpfkit_interp with a meta) */
};

BPFKIT_API int bpfkit_fast_prepare(const struct bpfkit_insn *insns, size_t n, unsigned flags,
				   const struct bpfkit_alloc *alloc, struct bpfkit_fast **out,
				   struct bpfkit_error *err);
/* libpcap dialect: bpfkit_interp(..., NULL).  (A Linux filter sees all-zero meta.) */
BPFKIT_API uint32_t bpfkit_fast_run(const struct bpfkit_fast *f, const uint8_t *pkt,
				    uint32_t caplen, uint32_t wirelen);
/* Linux dialect: bpfkit_interp(..., meta); meta NULL reads as all zero.  A
 * filter prepared without BPFKIT_FAST_LINUX ignores meta. */
BPFKIT_API uint32_t bpfkit_fast_run_meta(const struct bpfkit_fast *f, const uint8_t *pkt,
					 uint32_t caplen, uint32_t wirelen,
					 const struct bpfkit_meta *meta);
BPFKIT_API void bpfkit_fast_free(struct bpfkit_fast *f);

/*
 * The x86-64 JIT (docs/engines.md): compile once to machine code owned by an
 * opaque handle, run per packet.  It returns exactly what bpfkit_interp(...,
 * NULL) returns (libpcap dialect).  Compile rejects, with the validator's
 * message, programs that bpfkit_validate refuses in pcap mode.  The code
 * pages are never writable and executable at once.  BPFKIT_JIT_BLIND
 * (constant blinding) keeps every constant of the program out of the
 * executable bytes, against JIT spraying.  bpfkit_jit_available() is 0 on
 * other architectures, where compile fails with "unsupported": callers fall
 * back to bpfkit_fast.  A compiled filter is read-only: threads may share it.
 */
struct bpfkit_jit;

enum {
	BPFKIT_JIT_BLIND = 1  /* constant blinding */
};

/* The compiled code: fn(pkt, caplen, wirelen), callable with no wrapper. */
typedef uint32_t (*bpfkit_jit_fn)(const uint8_t *pkt, uint32_t caplen, uint32_t wirelen);

BPFKIT_API int bpfkit_jit_available(void);
BPFKIT_API int bpfkit_jit_compile(const struct bpfkit_insn *insns, size_t n, unsigned flags,
				  const struct bpfkit_alloc *alloc, struct bpfkit_jit **out,
				  struct bpfkit_error *err);
BPFKIT_API bpfkit_jit_fn bpfkit_jit_function(const struct bpfkit_jit *jit);
BPFKIT_API uint32_t bpfkit_jit_run(const struct bpfkit_jit *jit, const uint8_t *pkt,
				   uint32_t caplen, uint32_t wirelen);
BPFKIT_API void bpfkit_jit_free(struct bpfkit_jit *jit);

/* ------------------------------------------------------------------ */
/* Multi-filter matcher                                                */

/*
 * Many rules (compiled programs, libpcap dialect) matched at once
 * (docs/multi.md): build once, then per packet get every rule whose program
 * returns non-zero, exactly as running each program alone would.  Rules are
 * numbered 0..n-1 in the order given.  The matcher indexes the header fields
 * the rules compare with constants and runs only the candidates' programs
 * (and those it cannot index), on the engine the flags choose.  A built
 * matcher is read-only: threads may share it, each with its own state.
 */
struct bpfkit_multi;
struct bpfkit_multi_state;

enum {
	BPFKIT_MULTI_FAST = 0,   /* confirm candidates with the fast interpreter */
	BPFKIT_MULTI_JIT = 1,    /* the JIT where it takes the program, else fast */
	BPFKIT_MULTI_INTERP = 2, /* the reference interpreter */
	/* Flag: run every candidate's program, even one the matcher can decide from
	 * the header fields it has read (for tests and comparisons). */
	BPFKIT_MULTI_RUN_ALL = 8
};

struct bpfkit_multi_stats {
	size_t rules;
	size_t programs;          /* distinct programs (identical ones are run once) */
	size_t residual_programs; /* programs with no index entry: run on every packet */
	size_t residual_rules;    /* the rules they stand for */
	size_t fields;            /* header fields evaluated per packet */
	size_t entries;           /* (field value, program) index entries */
	size_t jitted;            /* programs running as JIT code */
	size_t bytes;             /* heap bytes held (JIT code pages not included) */
	size_t decided;           /* programs decided from header fields, never run */
	size_t hoisted;           /* tests evaluated once per packet for every program */
};

/*
 * Builds a matcher from n programs.  A program that fails pcap-mode
 * validation is an error: err->insn names the instruction and the message
 * starts with "rule N: ".
 */
BPFKIT_API int bpfkit_multi_build(const struct bpfkit_prog *rules, size_t n, unsigned flags,
				  const struct bpfkit_alloc *alloc, struct bpfkit_multi **out,
				  struct bpfkit_error *err);
BPFKIT_API void bpfkit_multi_free(struct bpfkit_multi *m);
BPFKIT_API size_t bpfkit_multi_rules(const struct bpfkit_multi *m);
BPFKIT_API void bpfkit_multi_stats(const struct bpfkit_multi *m, struct bpfkit_multi_stats *s);
/* Per-thread scratch for matching with m (m must outlive it). */
BPFKIT_API int bpfkit_multi_state_new(const struct bpfkit_multi *m,
				      const struct bpfkit_alloc *alloc,
				      struct bpfkit_multi_state **out, struct bpfkit_error *err);
BPFKIT_API void bpfkit_multi_state_free(struct bpfkit_multi_state *st);
/*
 * Matches one packet (libpcap semantics: caplen bytes, wire length wirelen).
 * Returns how many rules match; *ids (when ids is not NULL) receives their
 * numbers in increasing order, valid until the next call with st.
 */
BPFKIT_API size_t bpfkit_multi_match(const struct bpfkit_multi *m, struct bpfkit_multi_state *st,
				     const uint8_t *pkt, uint32_t caplen, uint32_t wirelen,
				     const uint32_t **ids);
/* The same into bitmap: (rules + 63) / 64 words, cleared, then bit i set for rule i. */
BPFKIT_API size_t bpfkit_multi_match_bitmap(const struct bpfkit_multi *m,
					    struct bpfkit_multi_state *st, const uint8_t *pkt,
					    uint32_t caplen, uint32_t wirelen, uint64_t *bitmap);

#ifdef __cplusplus
}
#endif
#endif
