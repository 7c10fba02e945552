add #1
sub x
mul %x
div #3
mod x
and #0xff
or #0b1010
xor #017
lsh #2
rsh x
neg
tax
txa
st M[0]
stx M[15]
ld M[0]
ldx m[15]
ldi 5
ldxi #6
ret %a
