#include "bpfkit.h"
#include <stdio.h>
int main(void) { puts("bpfkit: placeholder"); return 0; }
