/*
 * test_difftest.c - placeholder, replaced below.
 */
#include "harness.h"
