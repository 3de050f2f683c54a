#!/bin/sh
# Run every suite against a build directory and print one closing line
# "N passed, N failed, N skipped" with the totals. Exits non-zero when
# anything failed or when no test ran; skipped tests are counted, and the
# integration suite lists each one with its reason.
set -u
build=${1:?usage: run-tests.sh BUILD_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
python=${PYTHON:-/usr/bin/python3}
logs="$build/test-logs"
mkdir -p "$logs"
passed=0
failed=0
skipped=0

# ASan: leaks are errors; UBSan: stop at the first report.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

echo "== unit and fuzz-smoke suites (meson test)"
meson test -C "$build" --no-rebuild --print-errorlogs >"$logs/meson.txt" 2>&1
cat "$logs/meson.txt" | sed -n '/^ *[0-9]*\/[0-9]* /p'
ok=$(awk '/^Ok:/ {print $2}' "$logs/meson.txt")
fl=$(awk '/^(Fail|Timeout|Unexpected Pass):/ {s += $NF} END {print s + 0}' "$logs/meson.txt")
sk=$(awk '/^(Skipped|Expected Fail):/ {s += $NF} END {print s + 0}' "$logs/meson.txt")
if [ -z "$ok" ]; then
	echo "meson test did not run:"; tail -20 "$logs/meson.txt"; fl=$((fl + 1)); ok=0
elif [ "$fl" -gt 0 ]; then
	sed -n '/Summary of Failures/,$p' "$logs/meson.txt"
fi
passed=$((passed + ok)); failed=$((failed + fl)); skipped=$((skipped + sk))

echo "== integration suite (pytest)"
PODGATE_BUILD="$build" "$python" -m pytest -q -rs -p no:cacheprovider \
	--junitxml="$logs/pytest.xml" "$top/tests/integration" 2>&1 | tee "$logs/pytest.txt" | tail -40
counts=$("$python" - "$logs/pytest.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 1 0"); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
sk = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - sk, f, sk)
PY
)
set -- $counts
passed=$((passed + $1)); failed=$((failed + $2)); skipped=$((skipped + $3))

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
