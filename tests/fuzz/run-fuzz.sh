#!/bin/sh
# Run one libFuzzer harness: replay the committed corpus, then fuzz for
# SECONDS (default 10) with new inputs kept in a scratch corpus under the
# build directory.
set -eu
harness=$1 seeds=$2 dict=$3 scratch=$4
seconds=${SECONDS_FUZZ:-10}
mkdir -p "$scratch"
exec "$harness" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
	-dict="$dict" -print_final_stats=1 "$scratch" "$seeds"
