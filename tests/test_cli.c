/* test_cli.c - placeholder */
#include "harness.h"
