/*
 * test_fuzz.c - replays every fuzz target's seed corpus (fuzz/corpus/NAME)
 * through its plain replay build (fuzz/replay-NAME), so `make check` runs
 * the fuzz targets' own invariant checks on every seed.
 */
#include "harness.h"

#include <stdlib.h>

static const char *const targets[] = {
	"asm", "read_auto", "read_ddd", "read_iptables", "read_c", "read_listing", "read_json",
	"read_raw", "capture", "engines", "compile", "multi",
};

TEST(fuzz_replay_corpora)
{
	for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
		char cmd[512];
		snprintf(cmd, sizeof cmd, "./fuzz/replay-%s fuzz/corpus/%s", targets[i], targets[i]);
		char *out = NULL, *err = NULL;
		int rc = harness_run(cmd, &out, &err);
		CHECK_MSG(rc == 0, "%s exited %d: %s", cmd, rc, err ? err : "");
		/* The replay reports how many inputs ran; an empty corpus proves nothing. */
		CHECK_MSG(err && strstr(err, "replay: ") && !strstr(err, "replay: 0 inputs"),
			  "%s ran no inputs: %s", cmd, err ? err : "");
		free(out);
		free(err);
	}
}
