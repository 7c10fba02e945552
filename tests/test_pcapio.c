#include "harness.h"
TEST(pcapio_placeholder){CHECK(1);}
