#!/usr/bin/env bash
# Regenerates the tokenizer test corpus, tokenizers and HF goldens in tests/testdata/tokenizer/.
# Creates /work/main/.venv-tok (or $VENV) with Hugging Face `tokenizers` from PyPI. Reference only:
# the C++ build and tests never need Python.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
venv="${VENV:-$root/.venv-tok}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "tokenizers==0.23.3"
fi
out="$root/tests/testdata/tokenizer"
"$venv/bin/python" "$root/tools/reference/tokenizer/make_corpus.py" "$out/corpus"
"$venv/bin/python" "$root/tools/reference/tokenizer/make_tokenizer.py" "$out"
