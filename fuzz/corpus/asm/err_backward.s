top: ld #1
jeq #1, top, nx
nx: ret #0
