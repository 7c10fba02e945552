  ld [4]                  /* arch */
  jne #0xc000003e, bad
  ld [0]                  /* nr */
  jeq #15, good
  jeq #231, good
  jeq #60, good
  bad: ret #0
  good: ret #0x7fff0000
