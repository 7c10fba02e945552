jeq #1, a1, b1
a1: jgt x, b1
jge %x, c1, b1
b1: jset #4, c1
jlt #9, c1
jle x, c1
jne #3, c1
c1: ja d1
jmp d1
d1: ret #0
