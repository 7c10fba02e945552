/* test_alloc.c - placeholder */
#include "harness.h"
