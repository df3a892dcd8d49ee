"""Runs inside rknn-toolkit2's own environment (numpy 1.x, onnx <= 1.18), started by `rockchip.py`:
converts an ONNX model to an .rknn file for a Rockchip NPU, then serves inference requests on the
toolkit's simulator of that NPU until its stdin closes.

It imports nothing of edge-retalk (and runs with `python -I`, so that the modules beside it, such
as our onnx.py, do not shadow the toolkit's). Requests and replies on stdin/stdout are counts and .npy
blobs, each prefixed by its length (8 bytes, little-endian); the toolkit's own log goes to stderr.
`rockchip.py` imports the framing functions from here, so both ends speak the same format.
"""

import json
import os
import struct
import sys
from io import BytesIO

import numpy as np


def read_exact(stream, size):
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data


def read_arrays(stream):
    count = struct.unpack("<Q", read_exact(stream, 8))[0]
    arrays = []
    for _ in range(count):
        size = struct.unpack("<Q", read_exact(stream, 8))[0]
        arrays.append(np.load(BytesIO(read_exact(stream, size)), allow_pickle=False))
    return arrays


def write_arrays(stream, arrays):
    stream.write(struct.pack("<Q", len(arrays)))
    for array in arrays:
        buffer = BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        stream.write(struct.pack("<Q", buffer.tell()))
        stream.write(buffer.getvalue())
    stream.flush()


def main():
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    request = json.loads(open(sys.argv[1]).read())
    from rknn.api import RKNN

    toolkit = RKNN(verbose=False)
    toolkit.config(target_platform=request["platform"], quantized_algorithm="normal", quantized_method="channel")
    if toolkit.load_onnx(model=request["onnx"], inputs=request["inputs"], input_size_list=request["shapes"]) != 0:
        sys.exit("rknn-toolkit2 could not load the ONNX model")
    quantise = request["precision"] == "int8"
    if toolkit.build(do_quantization=quantise, dataset=request["dataset"] if quantise else None) != 0:
        sys.exit("rknn-toolkit2 could not build the model")
    if toolkit.export_rknn(request["target"]) != 0:
        sys.exit("rknn-toolkit2 could not write the .rknn file")
    if toolkit.init_runtime() != 0:
        sys.exit("rknn-toolkit2's simulator did not start")
    write_arrays(replies, [])
    stdin = sys.stdin.buffer
    while True:
        try:
            inputs = read_arrays(stdin)
        except EOFError:
            break
        formats = ["nchw" if array.ndim == 4 else None for array in inputs]
        write_arrays(replies, toolkit.inference(inputs=inputs, data_format=formats))
    toolkit.release()


if __name__ == "__main__":
    main()
