.insn 0x0e, 0, 0, 0
.insn 0x15, 0, 1, 7
.insn 6, 0, 0, 1
.insn 0x05, 0, 0, 0
ret #2
