#!/bin/sh
# Check that a kubectl of version 1.30 or later is on PATH (or $KUBECTL):
# the kubernetes target's tests run the real kubectl against the test API
# server. kubectl is not a Debian package; say how to get one when missing.
set -u
kubectl=${KUBECTL:-kubectl}
how="Install kubectl 1.30 or later (https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/):
  curl -LO https://dl.k8s.io/release/v1.32.4/bin/linux/amd64/kubectl
  sudo install -m 0755 kubectl /usr/local/bin/kubectl
or set KUBECTL to its path."
if ! command -v "$kubectl" >/dev/null 2>&1; then
	echo "check-kubectl: $kubectl not found." >&2
	echo "$how" >&2
	exit 1
fi
# "Client Version: v1.32.4" or "v1.32.4-dispatcher"
version=$("$kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: v\{0,1\}\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
set -- $version
if [ $# -ne 2 ]; then
	echo "check-kubectl: cannot read the version of $kubectl." >&2
	echo "$how" >&2
	exit 1
fi
if [ "$1" -lt 1 ] || { [ "$1" -eq 1 ] && [ "$2" -lt 30 ]; }; then
	echo "check-kubectl: $kubectl is version $1.$2; podgate needs 1.30 or later." >&2
	echo "$how" >&2
	exit 1
fi
exit 0
