L1: L2: ldxb 4*([14]&0xf)
ldx 4*([0x0e]&15)
ld [%x + -4]
ret #+3
