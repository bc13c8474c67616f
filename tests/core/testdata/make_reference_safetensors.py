#!/usr/bin/env python3
"""Writes reference_all_dtypes.safetensors with the reference `safetensors` writer (pip install
safetensors; written with 0.8.0). safetensors_test.cc reads it back: every dtype Tandem
supports, tensor k holding bytes (i * 37 + k * 11) & 0xFF, and file metadata. Run once; the
output is committed, so tests need no Python."""
import ctypes
import os

import safetensors

TENSORS = [  # name, header dtype, dtype name for TensorSpec, shape, element size
    ("f32", "F32", "float32", [3, 5], 4),
    ("bf16", "BF16", "bfloat16", [4, 3], 2),
    ("f16", "F16", "float16", [7], 2),
    ("f8e4m3", "F8_E4M3", "float8_e4m3fn", [2, 3, 2], 1),
    ("f8e5m2", "F8_E5M2", "float8_e5m2", [5], 1),
    ("i32", "I32", "int32", [2, 2], 4),
    ("i64", "I64", "int64", [3], 8),
    ("scalar", "F32", "float32", [], 4),
    ("empty", "BF16", "bfloat16", [0, 4], 2),
]


def main():
    buffers, specs = [], {}
    for k, (name, header_dtype, spec_dtype, shape, size) in enumerate(TENSORS):
        numel = 1
        for d in shape:
            numel *= d
        data = bytes((i * 37 + k * 11) & 0xFF for i in range(numel * size))
        if hasattr(safetensors, "TensorSpec"):  # safetensors >= 0.8
            buf = ctypes.create_string_buffer(data, max(len(data), 1))
            buffers.append(buf)
            specs[name] = safetensors.TensorSpec(dtype=spec_dtype, shape=shape,
                                                 data_ptr=ctypes.addressof(buf),
                                                 data_len=len(data))
        else:
            specs[name] = {"dtype": header_dtype, "shape": shape, "data": data}
    metadata = {"format": "pt", "writer": "safetensors " + safetensors.__version__}
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "reference_all_dtypes.safetensors")
    with open(out, "wb") as f:
        f.write(bytes(safetensors.serialize(specs, metadata=metadata)))


if __name__ == "__main__":
    main()
