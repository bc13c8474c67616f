#!/usr/bin/env bash
# The deployment checks (docs/deploy.md, "What is checked"): renders every overlay of deploy/k8s
# with kustomize, validates the manifests (kubernetes-validate, the LeaderWorkerSet fields,
# checkov), installs the CPU build with `cmake --install` into a temporary prefix and runs one
# rendered model group from that install tree as local processes. Run by tools/test.sh after the
# build; alone: bash tests/deploy/run.sh [pytest args].
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/deploy/venv.sh
# The install tree lives outside the checkout, so nothing in it can fall back on the sources.
prefix=$(mktemp -d "${TMPDIR:-/tmp}/tandem-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "${BUILD_DIR:-build}" --prefix "$prefix" > /dev/null
export TANDEM_INSTALL_PREFIX=$prefix
export BC_SKIP_MAPPING=TRUE  # checkov: no network lookups
# The local group runs in a network namespace of its own (root only): its pods' 127.0.x.y
# addresses are added to its loopback, and no port of this machine is touched.
netns=()
if [ "$(id -u)" = 0 ] && command -v ip > /dev/null && unshare -n -- true 2> /dev/null; then
  TANDEM_HOST_NETNS=$(readlink /proc/self/ns/net)
  export TANDEM_HOST_NETNS
  netns=(unshare -n -- /bin/sh -c 'ip link set lo up && exec "$@"' sh)
fi
"${netns[@]}" build/deploy-venv/bin/python -m pytest -p no:cacheprovider -q tests/deploy "$@"
