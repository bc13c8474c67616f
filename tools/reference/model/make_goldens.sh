#!/usr/bin/env bash
# Regenerates tests/testdata/model/: Hugging Face transformers' logits for Tandem's tiny
# checkpoints. Run deliberately, never from the test suite (the C++ tests only read the results).
#
#  - Installs torch (CPU use only) and transformers from PyPI into .venv-ref (gitignored; the
#    default Linux torch wheel pulls CUDA wheels: several GB, once).
#  - Writes each checkpoint with `tandem make-tiny-model` (deterministic per preset/seed/dtype);
#    the manifest records an FNV-1a 64 hash of model.safetensors so that the test notices when
#    the generator changed and the goldens must be regenerated.
#  - Validity of the reference: transformers' pure-PyTorch Nemotron-H path is right for prompts
#    <= chunk_size with time_step_min = 0 (tiny checkpoints are written so). Prompts longer than
#    chunk_size are included only because the transformers version pinned below falls back to a
#    chunked-scan reference implementation that was checked against Tandem position by position
#    (older releases sum the inter-chunk states over the wrong axis; see the model spec §7).
set -euo pipefail
cd "$(dirname "$0")/../../.."
venv=.venv-ref
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q "torch==2.15.0" "transformers==5.24.0" "safetensors" "numpy"
[ -x build/bin/tandem ] || { echo "build first: bash tools/build.sh" >&2; exit 1; }
exec "$venv/bin/python" tools/reference/model/make_goldens.py
