#!/bin/sh
# Build the podgate image (container/Containerfile) with the first container
# engine that works here: podman, then docker. `make image` runs this.
#
#   IMAGE   the tag to build (default podgate:latest)
#   ENGINE  the engines to try, in order (default "podman docker")
#
# Exit status: the engine's, or 2 when no engine works (a CLI whose daemon
# is not reachable does not count). The image is then not built, and the
# one line on stderr says how to build it elsewhere: docs/deploy.md.
set -eu

cd "$(dirname "$0")/.."
image=${IMAGE:-podgate:latest}
engines=${ENGINE:-podman docker}

why=
for engine in $engines; do
	if ! command -v "$engine" >/dev/null 2>&1; then
		why="$why${why:+, }$engine: not installed"
	elif "$engine" info >/dev/null 2>&1; then
		echo "building $image with $engine" >&2
		exec "$engine" build -f container/Containerfile -t "$image" .
	else
		why="$why${why:+, }$engine: CLI found but \`$engine info\` fails (no engine running)"
	fi
done

echo "make image: no container engine available ($why); build on a machine with one:" \
    "podman build -f container/Containerfile -t $image . (or docker build, same arguments)" >&2
exit 2
