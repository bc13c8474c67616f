#!/usr/bin/env bash
# Creates (or reuses) build/deploy-venv with the pinned tools of tests/deploy/requirements.txt.
# Re-installs only when requirements.txt changed. Needs PyPI the first time (~2 min).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=build/deploy-venv
stamp=$venv/.requirements
if [ -x "$venv/bin/python" ] && cmp -s tests/deploy/requirements.txt "$stamp"; then
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/deploy/requirements.txt
cp tests/deploy/requirements.txt "$stamp"
