#!/usr/bin/env bash
# Retrains Tandem's default model (models/default/) from scratch; see docs/models.md.
#  - Corpus: Jane Austen's six novels from Debian 12's r-cran-janeaustenr 1.0.0-1 (MIT; the texts are
#    public domain), fetched with `apt-get download` and read by extract_austen.py (no R needed).
#  - Python packages from PyPI into $VENV (default build/venv-train; the Linux torch wheel pulls CUDA
#    wheels, several GB, once; only the CPU is used).
#  - Deterministic for a given torch version and thread count. The recorded run (480 steps) took
#    54 minutes, 3.3 to 9 s a step, on 2 cores shared with three C++ builds.
# Extra arguments go to train.py (e.g. --steps N). The C++ build and tests never need Python.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${VENV:-build/venv-train}
work=build/default-model-corpus
mkdir -p "$work"
deb="$work/r-cran-janeaustenr_1.0.0-1_all.deb"
if [ ! -f "$deb" ]; then
  (cd "$work" && apt-get download r-cran-janeaustenr=1.0.0-1)
fi
rm -rf "$work/pkg"
dpkg-deb -x "$deb" "$work/pkg"
python3 tools/default_model/extract_austen.py "$work/pkg" "$work/corpus"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q "torch==2.15.0" "tokenizers==0.23.3" "safetensors==0.8.0" "numpy"
exec nice -n 5 "$venv/bin/python" tools/default_model/train.py "$work/corpus" models/default "$@"
