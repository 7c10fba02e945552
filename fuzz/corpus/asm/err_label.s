ld #1
  jeq #1, dorp
ret #0
