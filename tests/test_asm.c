/* test_asm.c - placeholder */
#include "harness.h"
