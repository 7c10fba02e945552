/* test_format.c - placeholder */
#include "harness.h"
