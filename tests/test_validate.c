/* test_validate.c - placeholder */
#include "harness.h"
