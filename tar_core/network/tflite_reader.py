"""A minimal reader for TensorFlow Lite model files (the FlatBuffer ``schema.fbs`` of TFLite).

Enough to rebuild a float graph in torch: the main subgraph's tensors (name, shape, type, constant
data), its operators (builtin name, inputs, outputs, the options of the builtins listed in
``_OPTION_FIELDS``) and its input and output tensors. Nothing is executed and nothing is imported
beyond numpy: a ``.tflite`` file is a FlatBuffer, read here by its offsets.

FlatBuffer layout, as used below: the file starts with a ``uint32`` offset to the root table. A table
starts with an ``int32`` soffset back to its vtable; the vtable holds ``uint16`` sizes (vtable, object)
and then one ``uint16`` offset per field, 0 (or beyond the vtable) meaning "absent: the default".
Offsets to sub-tables, vectors and strings are ``uint32`` relative to where they are stored; a vector
(or string) is a ``uint32`` length followed by its elements. All little-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["TFLiteModel", "TFLiteOp", "TFLiteTensor", "TFLiteFormatError", "read_tflite"]

# schema.fbs enum BuiltinOperator (the values a float vision model uses; others keep their number).
BUILTIN_OPS = {
    0: "ADD",
    1: "AVERAGE_POOL_2D",
    2: "CONCATENATION",
    3: "CONV_2D",
    4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE",
    6: "DEQUANTIZE",
    9: "FULLY_CONNECTED",
    14: "LOGISTIC",
    17: "MAX_POOL_2D",
    18: "MUL",
    19: "RELU",
    21: "RELU6",
    22: "RESHAPE",
    23: "RESIZE_BILINEAR",
    25: "SOFTMAX",
    28: "TANH",
    34: "PAD",
    40: "MEAN",
    41: "SUB",
    49: "SPLIT",
    97: "RESIZE_NEAREST_NEIGHBOR",
    98: "LEAKY_RELU",
    117: "HARD_SWISH",
}
# schema.fbs enum TensorType -> numpy dtype.
TENSOR_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
                9: np.int8, 10: np.float64}
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
PADDINGS = {0: "SAME", 1: "VALID"}

# Builtin options tables: field names in schema order, with (struct format, default); None = a vector of int32.
_CONV = [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0), ("activation", "b", 0),
         ("dilation_w", "i", 1), ("dilation_h", "i", 1)]
_DEPTHWISE = [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0), ("depth_multiplier", "i", 0),
              ("activation", "b", 0), ("dilation_w", "i", 1), ("dilation_h", "i", 1)]
_POOL = [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0), ("filter_w", "i", 0),
         ("filter_h", "i", 0), ("activation", "b", 0)]
_ACT_ONLY = [("activation", "b", 0)]
_OPTION_FIELDS = {
    "CONV_2D": _CONV,
    "DEPTHWISE_CONV_2D": _DEPTHWISE,
    "AVERAGE_POOL_2D": _POOL,
    "MAX_POOL_2D": _POOL,
    "ADD": _ACT_ONLY,
    "SUB": _ACT_ONLY,
    "MUL": _ACT_ONLY,
    "CONCATENATION": [("axis", "i", 0), ("activation", "b", 0)],
    "FULLY_CONNECTED": [("activation", "b", 0), ("weights_format", "b", 0), ("keep_num_dims", "?", False)],
    "RESHAPE": [("new_shape", None, None)],
    "RESIZE_BILINEAR": [("new_height", "i", 0), ("new_width", "i", 0), ("align_corners", "?", False),
                        ("half_pixel_centers", "?", False)],
    "RESIZE_NEAREST_NEIGHBOR": [("align_corners", "?", False), ("half_pixel_centers", "?", False)],
    "MEAN": [("keep_dims", "?", False)],
}


class TFLiteFormatError(ValueError):
    """The bytes are not a TFLite FlatBuffer this reader understands."""


@dataclass
class TFLiteTensor:
    """One tensor of the graph; ``data`` holds the constant's values (None for activations)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type
    data: np.ndarray | None = None


@dataclass
class TFLiteOp:
    """One operator: builtin name, tensor indices (-1 = optional input left out), parsed options."""

    index: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)


@dataclass
class TFLiteModel:
    """The main subgraph of a model: tensors by index, operators in execution order, graph inputs/outputs."""

    tensors: list[TFLiteTensor]
    ops: list[TFLiteOp]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def tensor_index(self, name: str) -> int:
        """Index of the tensor called ``name`` (KeyError when absent)."""
        for t in self.tensors:
            if t.name == name:
                return t.index
        raise KeyError(f"no tensor named {name!r} in the model")


class _Table:
    """A FlatBuffer table at byte position ``pos`` of ``buf``."""

    __slots__ = ("buf", "pos", "vtable", "vt_size")

    def __init__(self, buf: bytes, pos: int):
        if not 0 <= pos <= len(buf) - 4:
            raise TFLiteFormatError(f"table offset {pos} outside the file ({len(buf)} bytes)")
        self.buf, self.pos = buf, pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        if not 0 <= self.vtable <= len(buf) - 4:
            raise TFLiteFormatError(f"vtable offset {self.vtable} outside the file")
        self.vt_size = struct.unpack_from("<H", buf, self.vtable)[0]

    def _offset(self, i: int) -> int:
        """Position of field ``i`` relative to the table, 0 when the field is absent."""
        o = 4 + 2 * i
        return struct.unpack_from("<H", self.buf, self.vtable + o)[0] if o < self.vt_size else 0

    def scalar(self, i: int, fmt: str, default):
        o = self._offset(i)
        return struct.unpack_from("<" + fmt, self.buf, self.pos + o)[0] if o else default

    def _indirect(self, i: int) -> int | None:
        o = self._offset(i)
        if not o:
            return None
        p = self.pos + o
        return p + struct.unpack_from("<I", self.buf, p)[0]

    def table(self, i: int) -> _Table | None:
        p = self._indirect(i)
        return None if p is None else _Table(self.buf, p)

    def _vector(self, i: int) -> tuple[int, int]:
        """(position of the first element, length); (0, 0) when absent."""
        p = self._indirect(i)
        if p is None:
            return 0, 0
        n = struct.unpack_from("<I", self.buf, p)[0]
        return p + 4, n

    def tables(self, i: int) -> list[_Table]:
        start, n = self._vector(i)
        return [_Table(self.buf, start + 4 * k + struct.unpack_from("<I", self.buf, start + 4 * k)[0])
                for k in range(n)]

    def array(self, i: int, dtype) -> np.ndarray:
        start, n = self._vector(i)
        return np.frombuffer(self.buf, dtype=np.dtype(dtype).newbyteorder("<"), count=n, offset=start) if n else \
            np.zeros(0, dtype)

    def string(self, i: int) -> str:
        start, n = self._vector(i)
        return bytes(self.buf[start:start + n]).decode("utf-8") if n else ""


def _options(op: _Table, kind: str) -> dict:
    spec = _OPTION_FIELDS.get(kind)
    table = op.table(4)  # Operator.builtin_options
    if spec is None or table is None:
        return {}
    out = {}
    for k, (name, fmt, default) in enumerate(spec):
        out[name] = tuple(int(v) for v in table.array(k, np.int32)) if fmt is None else table.scalar(k, fmt, default)
    if "activation" in out:
        out["activation"] = ACTIVATIONS.get(out["activation"], str(out["activation"]))
    if "padding" in out:
        out["padding"] = PADDINGS.get(out["padding"], str(out["padding"]))
    return out


def read_tflite(source: str | Path | bytes) -> TFLiteModel:
    """Parse a ``.tflite`` file (path or bytes) into its main subgraph, constants included (copied out).

    Raises:
        TFLiteFormatError: not a TFLite FlatBuffer (bad identifier, offsets outside the file, no subgraph).
    """
    buf = bytes(source) if isinstance(source, bytes | bytearray | memoryview) else Path(source).read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise TFLiteFormatError("not a TFLite model (file identifier 'TFL3' missing)")
    try:
        model = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
        # Model: 0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers.
        codes = []
        for c in model.tables(1):
            # OperatorCode: 0 deprecated_builtin_code (int8), 1 custom_code, 2 version, 3 builtin_code (int32).
            code = max(c.scalar(0, "b", 0), c.scalar(3, "i", 0))
            codes.append(BUILTIN_OPS.get(code, c.string(1) or f"BUILTIN_{code}"))
        buffers = model.tables(4)
        subgraphs = model.tables(2)
        if not subgraphs:
            raise TFLiteFormatError("the model has no subgraph")
        graph = subgraphs[0]  # SubGraph: 0 tensors, 1 inputs, 2 outputs, 3 operators, 4 name.

        tensors = []
        for k, t in enumerate(graph.tables(0)):
            # Tensor: 0 shape, 1 type, 2 buffer, 3 name.
            shape = tuple(int(v) for v in t.array(0, np.int32))
            type_code = t.scalar(1, "b", 0)
            if type_code not in TENSOR_TYPES:
                raise TFLiteFormatError(f"tensor {k} has an unsupported type code {type_code}")
            dtype = TENSOR_TYPES[type_code]
            data = None
            b = t.scalar(2, "I", 0)
            if 0 < b < len(buffers):
                buffer = buffers[b]  # Buffer: 0 data, 1 offset (uint64, from the file start), 2 size.
                raw = buffer.array(0, np.uint8)
                if raw.size == 0 and buffer.scalar(1, "Q", 0) > 1:
                    off, size = buffer.scalar(1, "Q", 0), buffer.scalar(2, "Q", 0)
                    raw = np.frombuffer(buf, np.uint8, count=size, offset=off)
                if raw.size:
                    data = np.frombuffer(raw.tobytes(), dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
                    if data.size != int(np.prod(shape, dtype=np.int64)):
                        raise TFLiteFormatError(f"tensor {k}: {data.size} values for shape {shape}")
                    data = data.reshape(shape)
            tensors.append(TFLiteTensor(k, t.string(3), shape, dtype, data))

        ops = []
        for k, o in enumerate(graph.tables(3)):
            # Operator: 0 opcode_index, 1 inputs, 2 outputs, 3 builtin_options_type, 4 builtin_options.
            kind = codes[o.scalar(0, "I", 0)]
            ops.append(TFLiteOp(k, kind, tuple(int(v) for v in o.array(1, np.int32)),
                                tuple(int(v) for v in o.array(2, np.int32)), _options(o, kind)))
        inputs = tuple(int(v) for v in graph.array(1, np.int32))
        outputs = tuple(int(v) for v in graph.array(2, np.int32))
    except struct.error as e:
        raise TFLiteFormatError(f"truncated or corrupt TFLite file: {e}") from e
    return TFLiteModel(tensors, ops, inputs, outputs)
