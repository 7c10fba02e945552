/*
 * fast_body.h - the fast interpreter's body, included twice by fast.c: as
 * fast_exec_pcap (FAST_LINUX 0: the libpcap dialect, no Linux ops, so no
 * helper calls and no callee-saved registers to push: a leaner entry) and as
 * fast_exec_linux (FAST_LINUX 1: every op).  The text is written once, under
 * fast.c's OP/NEXT/JUMP/BRANCH macros; FAST_EXEC names the function.
 *
 * With labels != NULL the function only hands out its label table (threaded
 * builds) so prepare can store its handler addresses in the ops: an op array
 * runs only in the body whose table filled it.
 */
static FAST_NOINLINE uint32_t FAST_EXEC(const struct bpfkit_fast *f, const uint8_t *pkt,
					uint32_t caplen, uint32_t wirelen,
					const struct bpfkit_meta *meta,
					const void *const **labels)
{
#if FAST_THREADED
	static const void *const table[FOP__COUNT] = {
#define X(name) &&op_##name,
		FAST_OPS(X)
#undef X
	};
	if (labels) {
		*labels = table;
		return 0;
	}
#else
	(void)labels;
#endif
	uint32_t a = 0, x = 0, mem[BPFKIT_MEMWORDS];
#if FAST_LINUX
	uint32_t t;
#else
	(void)meta;
#endif
	const struct fop *pc = f->ops;
	if (f->zero_mem)
		memset(mem, 0, sizeof mem);
	if (caplen < f->entry_need)
		return 0;
	DISPATCH();
#if !FAST_THREADED
dispatch:
	switch (pc->h) {
#endif
	OP(CHECK)
		if (caplen < pc->k)
			return 0;
		NEXT();
	OP(LDW_ABS) a = rd32(pkt + pc->k); NEXT();
	OP(LDH_ABS) a = rd16(pkt + pc->k); NEXT();
	OP(LDB_ABS) a = rd8(pkt + pc->k); NEXT();
	OP(LDX_MSH) x = (uint32_t)(pkt[pc->k] & 0xf) << 2; NEXT();
	OP(LDW_IND)
		if ((uint64_t)x + pc->k + 4 > caplen)
			goto fail;
		a = rd32(pkt + (x + pc->k));
		NEXT();
	OP(LDH_IND)
		if ((uint64_t)x + pc->k + 2 > caplen)
			goto fail;
		a = rd16(pkt + (x + pc->k));
		NEXT();
	OP(LDB_IND)
		if ((uint64_t)x + pc->k + 1 > caplen)
			goto fail;
		a = rd8(pkt + (x + pc->k));
		NEXT();
	OP(LD_LEN) a = wirelen; NEXT();
	OP(LDX_LEN) x = wirelen; NEXT();
	OP(LD_IMM) a = pc->k; NEXT();
	OP(LDX_IMM) x = pc->k; NEXT();
	OP(LD_MEM) a = mem[pc->k]; NEXT();
	OP(LDX_MEM) x = mem[pc->k]; NEXT();
	OP(ST) mem[pc->k] = a; NEXT();
	OP(STX) mem[pc->k] = x; NEXT();

	OP(ADD_K) a += pc->k; NEXT();
	OP(SUB_K) a -= pc->k; NEXT();
	OP(MUL_K) a *= pc->k; NEXT();
	OP(DIV_K) a /= pc->k; NEXT();  /* k != 0: validated */
	OP(MOD_K) a %= pc->k; NEXT();
	OP(OR_K) a |= pc->k; NEXT();
	OP(AND_K) a &= pc->k; NEXT();
	OP(LSH_K) a <<= pc->k; NEXT(); /* k < 32: validated */
	OP(RSH_K) a >>= pc->k; NEXT();
	OP(XOR_K) a ^= pc->k; NEXT();
	OP(ADD_X) a += x; NEXT();
	OP(SUB_X) a -= x; NEXT();
	OP(MUL_X) a *= x; NEXT();
	OP(DIV_X)
		if (x == 0)
			goto fail;
		a /= x;
		NEXT();
	OP(MOD_X)
		if (x == 0)
			goto fail;
		a %= x;
		NEXT();
	OP(OR_X) a |= x; NEXT();
	OP(AND_X) a &= x; NEXT();
	OP(LSH_X) a = x < 32 ? a << x : 0; NEXT();
	OP(RSH_X) a = x < 32 ? a >> x : 0; NEXT();
	OP(XOR_X) a ^= x; NEXT();
	OP(NEG) a = 0u - a; NEXT();
	OP(TAX) x = a; NEXT();
	OP(TXA) a = x; NEXT();

	OP(JA) JUMP(pc->jt);
	OP(JEQ_K) BRANCH(a == pc->k);
	OP(JGT_K) BRANCH(a > pc->k);
	OP(JGE_K) BRANCH(a >= pc->k);
	OP(JSET_K) BRANCH((a & pc->k) != 0);
	OP(JEQ_X) BRANCH(a == x);
	OP(JGT_X) BRANCH(a > x);
	OP(JGE_X) BRANCH(a >= x);
	OP(JSET_X) BRANCH((a & x) != 0);
	OP(RET_K) return pc->k;
	OP(RET_A) return a;

	/* Fused: the load's offset in k, the compare's constant in k2. */
#define FUSED_ABS(LD, rd) \
	OP(LD##_JEQ) a = rd(pkt + pc->k); BRANCH(a == pc->k2); \
	OP(LD##_JGT) a = rd(pkt + pc->k); BRANCH(a > pc->k2); \
	OP(LD##_JGE) a = rd(pkt + pc->k); BRANCH(a >= pc->k2); \
	OP(LD##_JSET) a = rd(pkt + pc->k); BRANCH((a & pc->k2) != 0);
	FUSED_ABS(LDW_ABS, rd32)
	FUSED_ABS(LDH_ABS, rd16)
	FUSED_ABS(LDB_ABS, rd8)
#undef FUSED_ABS
#define FUSED_IND(LD, size, rd) \
	OP(LD##_JEQ) \
		if ((uint64_t)x + pc->k + (size) > caplen) \
			goto fail; \
		a = rd(pkt + (x + pc->k)); \
		BRANCH(a == pc->k2); \
	OP(LD##_JGT) \
		if ((uint64_t)x + pc->k + (size) > caplen) \
			goto fail; \
		a = rd(pkt + (x + pc->k)); \
		BRANCH(a > pc->k2); \
	OP(LD##_JGE) \
		if ((uint64_t)x + pc->k + (size) > caplen) \
			goto fail; \
		a = rd(pkt + (x + pc->k)); \
		BRANCH(a >= pc->k2); \
	OP(LD##_JSET) \
		if ((uint64_t)x + pc->k + (size) > caplen) \
			goto fail; \
		a = rd(pkt + (x + pc->k)); \
		BRANCH((a & pc->k2) != 0);
	FUSED_IND(LDW_IND, 4, rd32)
	FUSED_IND(LDH_IND, 2, rd16)
	FUSED_IND(LDB_IND, 1, rd8)
#undef FUSED_IND
	/* ldxb 4*([m]&0xf) then a fused indirect load: k = m | (k of the load) << 16. */
#define FUSED_MSH(LD, size, rd) \
	OP(LD##_JEQ) \
		x = (uint32_t)(pkt[pc->k & 0xffff] & 0xf) << 2; \
		if ((uint64_t)x + (pc->k >> 16) + (size) > caplen) \
			goto fail; \
		a = rd(pkt + x + (pc->k >> 16)); \
		BRANCH(a == pc->k2); \
	OP(LD##_JGT) \
		x = (uint32_t)(pkt[pc->k & 0xffff] & 0xf) << 2; \
		if ((uint64_t)x + (pc->k >> 16) + (size) > caplen) \
			goto fail; \
		a = rd(pkt + x + (pc->k >> 16)); \
		BRANCH(a > pc->k2); \
	OP(LD##_JGE) \
		x = (uint32_t)(pkt[pc->k & 0xffff] & 0xf) << 2; \
		if ((uint64_t)x + (pc->k >> 16) + (size) > caplen) \
			goto fail; \
		a = rd(pkt + x + (pc->k >> 16)); \
		BRANCH(a >= pc->k2); \
	OP(LD##_JSET) \
		x = (uint32_t)(pkt[pc->k & 0xffff] & 0xf) << 2; \
		if ((uint64_t)x + (pc->k >> 16) + (size) > caplen) \
			goto fail; \
		a = rd(pkt + x + (pc->k >> 16)); \
		BRANCH((a & pc->k2) != 0);
	FUSED_MSH(MSH_LDW, 4, rd32)
	FUSED_MSH(MSH_LDH, 2, rd16)
	FUSED_MSH(MSH_LDB, 1, rd8)
#undef FUSED_MSH
	/* and #k then a jump on #k2. */
	OP(AND_K_JEQ) a &= pc->k; BRANCH(a == pc->k2);
	OP(AND_K_JGT) a &= pc->k; BRANCH(a > pc->k2);
	OP(AND_K_JGE) a &= pc->k; BRANCH(a >= pc->k2);
	OP(AND_K_JSET) a &= pc->k; BRANCH((a & pc->k2) != 0);
	/* Jeq chains (fast.c, emit_chain): two constants, or four 16-bit ones, per op. */
	OP(JEQ2) BRANCH((a == pc->k) | (a == pc->k2));
	OP(JEQ4_16)
		BRANCH((a == (pc->k & 0xffff)) | (a == pc->k >> 16) | (a == (pc->k2 & 0xffff)) |
		       (a == pc->k2 >> 16));

#if FAST_LINUX
	/* Linux dialect: k is the offset after SKF_NET_OFF, or a meta field's. */
	OP(LDW_NET)
		if (!load_at(pkt, caplen, (uint64_t)meta->net_offset + pc->k, 4, &t))
			goto fail;
		a = t;
		NEXT();
	OP(LDH_NET)
		if (!load_at(pkt, caplen, (uint64_t)meta->net_offset + pc->k, 2, &t))
			goto fail;
		a = t;
		NEXT();
	OP(LDB_NET)
		if (!load_at(pkt, caplen, (uint64_t)meta->net_offset + pc->k, 1, &t))
			goto fail;
		a = t;
		NEXT();
	OP(LDX_MSH_NET)
		if (!load_at(pkt, caplen, (uint64_t)meta->net_offset + pc->k, 1, &t))
			goto fail;
		x = (t & 0xf) << 2;
		NEXT();
	OP(LDW_IND_LNX)
		if (!load_linux(pkt, caplen, meta, x + pc->k, 4, &t))
			goto fail;
		a = t;
		NEXT();
	OP(LDH_IND_LNX)
		if (!load_linux(pkt, caplen, meta, x + pc->k, 2, &t))
			goto fail;
		a = t;
		NEXT();
	OP(LDB_IND_LNX)
		if (!load_linux(pkt, caplen, meta, x + pc->k, 1, &t))
			goto fail;
		a = t;
		NEXT();
	OP(LD_META)
		a = *(const uint32_t *)(const void *)((const char *)meta + pc->k);
		NEXT();
	OP(LD_NLA) a = anc_nla(pkt, caplen, a, x); NEXT();
	OP(LD_NLAN) a = anc_nla_nest(pkt, caplen, a, x); NEXT();
	OP(LSH_X_LNX) a <<= x & 31; NEXT();
	OP(RSH_X_LNX) a >>= x & 31; NEXT();
#else
	/* Never in a pcap-dialect op array (prepare picks this body only then). */
	OP(LDW_NET) OP(LDH_NET) OP(LDB_NET) OP(LDX_MSH_NET) OP(LDW_IND_LNX) OP(LDH_IND_LNX)
	OP(LDB_IND_LNX) OP(LD_META) OP(LD_NLA) OP(LD_NLAN) OP(LSH_X_LNX) OP(RSH_X_LNX)
		goto fail;
#endif
#if !FAST_THREADED
	default:
		break;
	}
#endif
fail:
	return 0;
}

#undef FAST_EXEC
#undef FAST_LINUX
