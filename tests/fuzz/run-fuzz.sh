#!/bin/sh
# Run one libFuzzer harness: replay the committed corpus, then fuzz for
# SECONDS (default 10) with new inputs kept in a scratch corpus under the
# build directory. The mutations follow FUZZ_SEED (default 1), so that
# `make test` explores the same inputs on every machine and a failure there
# is one anyone can reproduce; `make fuzz` sets 0, a new seed each run, to
# search further.
set -eu
harness=$1 seeds=$2 dict=$3 scratch=$4
seconds=${SECONDS_FUZZ:-10}
seed=${FUZZ_SEED:-1}
mkdir -p "$scratch"
exec "$harness" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
	-seed="$seed" -dict="$dict" -print_final_stats=1 "$scratch" "$seeds"
