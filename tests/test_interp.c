/* test_interp.c - placeholder */
#include "harness.h"
