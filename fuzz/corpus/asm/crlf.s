ldh [12]
jeq #0x800, ok
ret #0
ok: ret #1