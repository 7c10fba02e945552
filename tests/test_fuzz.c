/* test_fuzz.c - placeholder */
#include "harness.h"
