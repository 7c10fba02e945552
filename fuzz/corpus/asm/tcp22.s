  ldh [12]
  jne #0x800, drop
  ldb [23]
  jneq #6, drop
  ldxb 4 * ([14] & 0xf)
  ldh [x + 14]
  jeq #0x16, pass
  ldh [x + 16]
  jne #0x16, drop
pass: ret #-1
drop: ret #0
