/* test_kernel.c - placeholder */
#include "harness.h"
