#!/usr/bin/env bash
# The Python client's and the gateway's tests against a real `tandem serve` (build/bin/tandem, or
# $TANDEM_BIN): makes a virtual environment (build/python-venv, or $TANDEM_PY_VENV), installs
# clients/python with its test extras from PyPI (pip with a timeout and few retries, so a machine
# without network fails in about a minute saying so instead of hanging), then runs pytest.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${TANDEM_PY_VENV:-$repo/build/python-venv}"
export TANDEM_BIN="${TANDEM_BIN:-$repo/build/bin/tandem}"

if [ ! -x "$TANDEM_BIN" ]; then
  echo "clients/python/test.sh: $TANDEM_BIN not found; build Tandem first (tools/build.sh)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || {
    echo "clients/python/test.sh: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
    exit 1
  }
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q --timeout 20 --retries 2)
# The package builds in a temporary copy so nothing is written into the source tree.
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
mkdir -p "$src/clients"
cp -r "$repo/proto" "$src/proto"
cp -r "$here" "$src/clients/python"
rm -rf "$src/clients/python/build" "$src/clients/python/src/"*.egg-info
if ! "${pip[@]}" install "$src/clients/python[test]"; then
  echo "clients/python/test.sh: pip install failed (no network to PyPI, or a proxy is needed:" \
       "set PIP_INDEX_URL / HTTPS_PROXY)" >&2
  exit 1
fi
cd "$here"
exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@" tests
