#!/bin/sh
# Install the npm packages named as arguments (NAME@VERSION) globally when
# the command they provide is missing or has another version.
set -eu
# Debian's npm (and its nodejs) unless some npm is already on PATH.
command -v npm >/dev/null 2>&1 || "$(dirname "$0")/install-deps.sh" npm
missing=""
for p in "$@"; do
	name=${p%@*}
	want=${p##*@}
	have=$(npm ls -g --depth=0 "$name" 2>/dev/null | sed -n "s/.*$name@\([0-9.]*\).*/\1/p")
	[ "$have" = "$want" ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing from npm:$missing"
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
$sudo npm install -g --no-fund --no-audit $missing
