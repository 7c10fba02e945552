; semicolon
#hash at start
/* block
   over lines */ ld [0] # trailing
ret #1 /* after */
