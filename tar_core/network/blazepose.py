"""The ``blazepose`` trunk: BlazePose GHUM 3D (full) from the installed mediapipe wheel, run in torch.

The weights are read at run time from ``mediapipe/modules/pose_landmark/pose_landmark_full.tflite``
inside the installed ``mediapipe`` package (sha256-checked; never copied into the repository or a
checkpoint). The TFLite graph is rebuilt here op by op (``TFLiteGraph``): every operator the
requested outputs depend on becomes a torch step, so the segmentation branch (256x256 logits, unused)
is pruned. Half-precision weights are expanded the way the file's DEQUANTIZE ops do (float16 -> float32).

Tensors of the trunk (TFLite NHWC shapes; torch keeps NCHW):

- input ``input_1`` [1, 256, 256, 3]: RGB in [0, 1];
- decoder map ``model_1/model/add_11/add`` [1, 64, 64, 48]: the stride-4 map the heatmap head reads;
  the local map of TAR, (B, 48, 64, 64);
- ``model_1/model/re_lu_63/Relu6;model_1/model/add_22/add`` [1, 2, 2, 288]: the vector all landmark
  heads read; flattened in NHWC order it is TAR's global vector, (B, 1152);
- ``Identity`` [1, 195]: 39 x (x, y, z, visibility, presence logits), x and y in crop pixels;
  ``Identity_4`` [1, 117]: 39 x 3 world landmarks (metres, hip-centred); ``Identity_3`` [1, 64, 64, 39]
  heatmaps; ``Identity_1`` [1, 1] pose presence (after a sigmoid).

``BlazePoseTrunk`` takes the project's crops (``tar_core.geometry.cropping.normalize``: ImageNet-normalised,
(B, 3, 256, 256)), undoes the ImageNet normalisation, and returns ``(global_vec, local_map)`` like every
backbone in ``tar_core.network.backbones``; ``extract`` returns every output by name.

Measured (tests/network/test_blazepose_trunk.py, scripts/bench_trunk.py): against the TFLite interpreter on two
sample crops, landmarks agree to 4e-4 px, world landmarks to 4e-5 m, the decoder map to 1.2e-5 of its
range. On one x86 CPU thread, batch 16 in chunks of 4, channels-last: about 19 ms of CPU per crop
(LiteRT on the same file: about 17 ms with its segmentation branch).
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tar_core.errors import CheckpointError
from tar_core.geometry.cropping import IMAGENET_MEAN, IMAGENET_STD
from tar_core.network.tflite_reader import TFLiteModel, TFLiteOp, read_tflite

__all__ = [
    "TRUNK_FILE",
    "TRUNK_SHA256",
    "BlazePoseTrunk",
    "TFLiteGraph",
    "find_trunk_file",
    "read_trunk_file",
]

TRUNK_FILE = "modules/pose_landmark/pose_landmark_full.tflite"  # inside the mediapipe package
TRUNK_SHA256 = "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"  # mediapipe==0.10.21
INPUT_SIZE = 256
NUM_LANDMARKS = 39

# Tensor names inside the graph (see the module docstring).
DECODER_MAP = "model_1/model/add_11/add"
GLOBAL_VECTOR = "model_1/model/re_lu_63/Relu6;model_1/model/add_22/add"
LANDMARKS = "Identity"
POSE_FLAG = "Identity_1"
HEATMAPS = "Identity_3"
WORLD_LANDMARKS = "Identity_4"



# --------------------------------------------------------------------------------------------- the file
def find_trunk_file() -> Path:
    """Path of ``pose_landmark_full.tflite`` in the installed mediapipe package (not imported: only located)."""
    try:
        spec = importlib.util.find_spec("mediapipe")
    except (ImportError, ValueError) as e:
        raise CheckpointError(f"cannot locate the mediapipe package: {e}") from e
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("the mediapipe package is not installed (pip install mediapipe==0.10.21): "
                             f"the blazepose trunk reads {TRUNK_FILE} from it")
    for root in spec.submodule_search_locations:
        path = Path(root) / TRUNK_FILE
        if path.is_file():
            return path
    raise CheckpointError(f"mediapipe is installed at {list(spec.submodule_search_locations)} but has no {TRUNK_FILE}")


def read_trunk_file(path: str | Path | None = None, sha256: str | None = TRUNK_SHA256) -> bytes:
    """The trunk file's bytes, after checking its sha256 (``sha256=None`` skips the check).

    Raises:
        CheckpointError: missing or unreadable file, or a sha256 other than ``sha256``.
    """
    path = find_trunk_file() if path is None else Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read the blazepose trunk file {path}: {e}") from e
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256.lower():
            raise CheckpointError(
                f"the blazepose trunk file {path} is not the expected one: sha256 {digest} "
                f"({len(data)} bytes), expected {sha256.lower()} (pose_landmark_full.tflite of mediapipe==0.10.21)"
            )
    return data


# --------------------------------------------------------------------------------------------- graph
def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite 'SAME' padding along one axis: (before, after); the odd pixel goes after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _activation(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "NONE":
        return x
    if name == "RELU6":
        return F.relu6(x, inplace=True)
    if name == "RELU":
        return F.relu(x, inplace=True)
    raise NotImplementedError(f"fused activation {name}")


# Steps of the graph: module-level functions ``fn(graph, *values, **params)`` bound to their parameters by
# ``functools.partial``, so that a copied (or pickled) graph reads its own weight buffers, never the original's.
def _run_pad(g: TFLiteGraph, v: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    return F.pad(v, pad)


def _run_conv(g: TFLiteGraph, v: torch.Tensor, w_name: str, b_name: str | None, stride, padding, dilation,
              groups: int, explicit: tuple[int, int, int, int] | None, act: str) -> torch.Tensor:
    if explicit is not None:  # (left, right, top, bottom), TFLite's asymmetric SAME padding
        v = F.pad(v, explicit)
    bias = None if b_name is None else getattr(g, b_name)
    return _activation(F.conv2d(v, getattr(g, w_name), bias, stride, padding, dilation, groups), act)


def _run_add(g: TFLiteGraph, u: torch.Tensor, v: torch.Tensor, act: str) -> torch.Tensor:
    return _activation(u + v, act)


def _run_add_inplace(g: TFLiteGraph, u: torch.Tensor, v: torch.Tensor, act: str) -> torch.Tensor:
    return _activation(u.add_(v), act)  # u dies with this step


def _run_resize(g: TFLiteGraph, v: torch.Tensor, size: tuple[int, int], align_corners: bool) -> torch.Tensor:
    return F.interpolate(v, size=size, mode="bilinear", align_corners=align_corners)


def _run_pool(g: TFLiteGraph, v: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
              kind: str) -> torch.Tensor:
    return (F.max_pool2d if kind == "MAX_POOL_2D" else F.avg_pool2d)(v, kernel, stride)


def _run_reshape(g: TFLiteGraph, v: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    v = v.permute(0, 2, 3, 1) if v.dim() == 4 else v  # back to TFLite's NHWC order
    v = v.reshape(v.shape[0], *shape[1:])
    return v.permute(0, 3, 1, 2) if v.dim() == 4 else v


def _run_sigmoid(g: TFLiteGraph, v: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(v)


def _run_activation(g: TFLiteGraph, v: torch.Tensor, act: str) -> torch.Tensor:
    return _activation(v, act)


class _Step:
    """One torch step of the graph: ``fn(graph, *input values)`` (NCHW), with TFLite tensor ids."""

    __slots__ = ("kind", "inputs", "output", "fn", "fn_inplace", "name")

    def __init__(self, kind: str, inputs: tuple[int, ...], output: int, fn, name: str):
        self.kind, self.inputs, self.output, self.fn, self.name = kind, inputs, output, fn, name
        self.fn_inplace = None  # a variant that may overwrite its first input


class TFLiteGraph(nn.Module):
    """A float TFLite graph rebuilt in torch, pruned to the ops that ``outputs`` depend on.

    Weights are non-persistent buffers: they follow ``.to()`` but never enter a ``state_dict`` (so never
    a checkpoint), and nothing here is a parameter (the trunk is frozen by construction).

    ``forward(x)`` takes the graph input as (B, C, H, W) and returns ``{name: tensor}`` for ``outputs``:
    4-D tensors in NCHW (in torch's channels-last memory format when ``channels_last``), others as
    TFLite lays them out, with the batch size B in front. It runs without autograd (sums are done in
    place on intermediate values): the graph is a fixed feature extractor.

    ``channels_last`` (default) keeps activations and weights in NHWC memory: torch's CPU depthwise
    convolutions and bilinear resizes are several times faster that way.
    """

    SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "PAD", "RESIZE_BILINEAR", "MAX_POOL_2D",
                 "AVERAGE_POOL_2D", "RESHAPE", "LOGISTIC", "RELU6", "RELU")

    def __init__(self, model: TFLiteModel, outputs: list[str], channels_last: bool = True):
        super().__init__()
        self.model = model
        self.channels_last = channels_last
        self.output_names = list(outputs)
        self._outputs = [model.tensor_index(n) for n in outputs]
        if len(model.inputs) != 1:
            raise ValueError(f"expected a graph with one input, got {len(model.inputs)}")
        self._input = model.inputs[0]
        self._consts = self._constants()
        self._ops = self._needed_ops()

        # A zero PAD whose only reader is a VALID convolution becomes that convolution's padding when symmetric.
        consumers: dict[int, list[TFLiteOp]] = {}
        for op in self._ops:
            for i in op.inputs:
                consumers.setdefault(i, []).append(op)
        self._steps: list[_Step] = []
        self._folded_pads: dict[int, tuple[int, int, int, int]] = {}  # pad output -> (left, right, top, bottom)
        for op in self._ops:
            self._steps.extend(self._build(op, consumers))
        self._free_after = self._last_uses()
        self._sum_in_place()
        # Weights now live in buffers; the parsed model is no longer needed.
        self._consts, self._ops, self.model = {}, [], None

    # ------------------------------------------------------------------------------------- building
    def _needed_ops(self) -> list[TFLiteOp]:
        """The ops the outputs depend on, in the graph's order."""
        model = self.model
        producer = {o: op for op in model.ops for o in op.outputs}
        needed: set[int] = set()
        stack = list(self._outputs)
        while stack:  # walk back from the outputs; constants and the graph input end the walk
            t = stack.pop()
            if t in needed or t in self._consts or t == self._input or t < 0:
                continue
            needed.add(t)
            if t not in producer:
                raise ValueError(f"tensor {model.tensors[t].name!r} has no producer")
            stack.extend(producer[t].inputs)
        return [op for op in model.ops if op.outputs[0] in needed]

    def _last_uses(self) -> list[list[int]]:
        """Per step the values it reads for the last time, dropped after it (peak memory at batch 16
        stays modest); the outputs are kept."""
        last_use: dict[int, int] = {}
        for k, s in enumerate(self._steps):
            for i in s.inputs:
                last_use[i] = k
        keep = set(self._outputs)
        return [[i for i in s.inputs if last_use.get(i) == k and i not in keep] for k, s in enumerate(self._steps)]

    def _sum_in_place(self) -> None:
        """A sum may overwrite an operand that dies with it, when that operand is a fresh tensor (not
        the graph input, not a view such as a reshape's output)."""
        fresh_kinds = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESIZE_BILINEAR")
        fresh = {s.output for s in self._steps if s.kind in fresh_kinds}
        for s, free in zip(self._steps, self._free_after, strict=True):
            if s.kind == "ADD":
                a, b = s.inputs
                if b in free and b in fresh and a not in free:
                    s.inputs = (b, a)
                if s.inputs[0] in free and s.inputs[0] in fresh and a != b:
                    s.fn = s.fn_inplace

    def _constants(self) -> dict[int, np.ndarray]:
        """Constant tensors as float32/int32 arrays: stored data, plus the DEQUANTIZE outputs of them."""
        consts = {t.index: t.data for t in self.model.tensors if t.data is not None}
        for op in self.model.ops:
            if op.kind == "DEQUANTIZE" and op.inputs[0] in consts:
                consts[op.outputs[0]] = consts[op.inputs[0]].astype(np.float32)
        return consts

    def _shape(self, t: int) -> tuple[int, ...]:
        return self.model.tensors[t].shape

    def _buffer(self, name: str, array: np.ndarray) -> torch.Tensor:
        value = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if self.channels_last and value.dim() == 4:
            value = value.contiguous(memory_format=torch.channels_last)
        self.register_buffer(name, value, persistent=False)
        return value

    def _pad_of(self, op: TFLiteOp) -> tuple[int, int, int, int]:
        """Explicit zero padding (left, right, top, bottom) of a PAD op on an NHWC tensor."""
        pads = self._consts[op.inputs[1]].reshape(-1, 2)
        if pads.shape[0] != 4 or pads[0].any() or pads[3].any():
            raise NotImplementedError(f"PAD {pads.tolist()}: only spatial padding is supported")
        return int(pads[2, 0]), int(pads[2, 1]), int(pads[1, 0]), int(pads[1, 1])

    def _build(self, op: TFLiteOp, consumers: dict[int, list[TFLiteOp]]) -> list[_Step]:
        """The torch step for one op ([] for a PAD that its convolution takes over)."""
        kind, name = op.kind, self.model.tensors[op.outputs[0]].name
        if kind not in self.SUPPORTED:
            raise NotImplementedError(f"TFLite op {kind} ({name}) is not supported by the torch port")
        if kind == "PAD":
            return self._pad_step(op, consumers, name)
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            return [self._conv_step(op, name)]
        if kind == "ADD":
            return [self._add_step(op, name)]
        if kind == "RESIZE_BILINEAR":
            return [self._resize_step(op, name)]
        if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            return [self._pool_step(op, name)]
        x, out = op.inputs[0], op.outputs[0]
        if kind == "RESHAPE":
            return [_Step(kind, (x,), out, partial(_run_reshape, shape=self._shape(out)), name)]
        if kind == "LOGISTIC":
            return [_Step(kind, (x,), out, _run_sigmoid, name)]
        return [_Step(kind, (x,), out, partial(_run_activation, act=kind), name)]

    def _pad_step(self, op: TFLiteOp, consumers: dict[int, list[TFLiteOp]], name: str) -> list[_Step]:
        """A zero PAD, or none where its only reader is a VALID convolution and the pad is symmetric:
        that convolution pads instead."""
        x, out = op.inputs[0], op.outputs[0]
        pad = self._pad_of(op)
        users = consumers.get(out, [])
        symmetric = pad[0] == pad[1] and pad[2] == pad[3]
        if (symmetric and len(users) == 1 and users[0].kind in ("CONV_2D", "DEPTHWISE_CONV_2D")
                and users[0].options["padding"] == "VALID" and out not in self._outputs):
            self._folded_pads[out] = pad
            return []
        return [_Step(op.kind, (x,), out, partial(_run_pad, pad=pad), name)]

    def _conv_weight(self, op: TFLiteOp) -> tuple[np.ndarray, np.ndarray | None, int]:
        """Torch's weight (O, I / groups, kh, kw), the bias (O,) or None, and the groups of a convolution."""
        w = self._consts[op.inputs[1]]  # conv: (O, kh, kw, I); depthwise: (1, kh, kw, C * multiplier)
        b = self._consts.get(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        cin = self._shape(op.inputs[0])[3]
        if op.kind == "CONV_2D":
            return w.transpose(0, 3, 1, 2), b, 1  # (O, I, kh, kw)
        return w[0].transpose(2, 0, 1)[:, None], b, cin  # (C * m, 1, kh, kw)

    def _conv_padding(self, op: TFLiteOp, kernel: tuple[int, int]):
        """(the tensor the convolution reads, torch's symmetric (top, left) padding, an explicit
        (left, right, top, bottom) pad before it or None)."""
        x, o = op.inputs[0], op.options
        source, padding, explicit = x, (0, 0), None
        if x in self._folded_pads:  # PAD -> VALID conv with a symmetric pad: the conv pads
            left, _, top, _ = self._folded_pads[x]
            padding = (top, left)
            source = next(p.inputs[0] for p in self._ops if p.outputs[0] == x)
        if o["padding"] == "SAME":
            in_h, in_w = self._shape(x)[1:3]
            top, bottom = _same_padding(in_h, kernel[0], o["stride_h"], o["dilation_h"])
            left, right = _same_padding(in_w, kernel[1], o["stride_w"], o["dilation_w"])
            if top == bottom and left == right:
                padding = (top, left)
            else:  # asymmetric (stride 2 on an even size): pad explicitly, then a VALID conv
                explicit = (left, right, top, bottom)
        return source, padding, explicit

    def _conv_step(self, op: TFLiteOp, name: str) -> _Step:
        """A (depthwise) convolution, its weights in buffers named after the op."""
        o = op.options
        weight, bias, groups = self._conv_weight(op)
        source, padding, explicit = self._conv_padding(op, weight.shape[2:])
        w_name, b_name = f"w{op.index}", None if bias is None else f"b{op.index}"
        self._buffer(w_name, weight)
        if bias is not None:
            self._buffer(b_name, bias)
        conv = partial(_run_conv, w_name=w_name, b_name=b_name, stride=(o["stride_h"], o["stride_w"]),
                       padding=padding, dilation=(o["dilation_h"], o["dilation_w"]), groups=groups,
                       explicit=explicit, act=o["activation"])
        return _Step(op.kind, (source,), op.outputs[0], conv, name)

    def _add_step(self, op: TFLiteOp, name: str) -> _Step:
        """A sum of two same-shape tensors; its in-place twin is chosen later, where an operand dies."""
        a, b = op.inputs
        if self._shape(a) != self._shape(b):
            raise NotImplementedError(f"ADD with broadcasting ({name})")
        act = op.options["activation"]
        step = _Step(op.kind, (a, b), op.outputs[0], partial(_run_add, act=act), name)
        step.fn_inplace = partial(_run_add_inplace, act=act)
        return step

    def _resize_step(self, op: TFLiteOp, name: str) -> _Step:
        o = op.options
        size = tuple(int(v) for v in self._consts[op.inputs[1]])
        # torch's align_corners=False is TFLite's half-pixel rule; TFLite's legacy rule (neither) has no twin.
        if not (o["align_corners"] or o["half_pixel_centers"]):
            raise NotImplementedError(f"RESIZE_BILINEAR without half-pixel centres ({name})")
        resize = partial(_run_resize, size=size, align_corners=o["align_corners"])
        return _Step(op.kind, (op.inputs[0],), op.outputs[0], resize, name)

    def _pool_step(self, op: TFLiteOp, name: str) -> _Step:
        kind, o = op.kind, op.options
        if o["padding"] != "VALID" or o["activation"] != "NONE":
            raise NotImplementedError(f"{kind} with {o['padding']} padding / {o['activation']} ({name})")
        pool = partial(_run_pool, kernel=(o["filter_h"], o["filter_w"]), stride=(o["stride_h"], o["stride_w"]),
                       kind=kind)
        return _Step(kind, (op.inputs[0],), op.outputs[0], pool, name)

    # ------------------------------------------------------------------------------------- running
    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x (B, C, H, W) -> {output name: tensor}, 4-D outputs in NCHW."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        values: dict[int, torch.Tensor] = {self._input: x}
        for step, free in zip(self._steps, self._free_after, strict=True):
            values[step.output] = step.fn(self, *(values[i] for i in step.inputs))
            for i in free:
                values.pop(i, None)
        return {name: values[t] for name, t in zip(self.output_names, self._outputs, strict=True)}

    @property
    def num_weights(self) -> int:
        """Number of weight values (the trunk's parameters, held as buffers)."""
        return sum(b.numel() for b in self.buffers())

    @property
    def num_steps(self) -> int:
        return len(self._steps)

    def step_kinds(self) -> dict[str, int]:
        """How many steps of each op kind the pruned graph runs."""
        counts: dict[str, int] = {}
        for s in self._steps:
            counts[s.kind] = counts.get(s.kind, 0) + 1
        return counts


# --------------------------------------------------------------------------------------------- trunk
class BlazePoseTrunk(nn.Module):
    """Frozen BlazePose GHUM 3D trunk: ``forward(images) -> (global_vec, local_map)``, like the backbones.

    Args:
        path: the ``.tflite`` file; default: found in the installed mediapipe package.
        sha256: the file's expected sha256 (default: mediapipe 0.10.21's); None skips the check.
        with_heatmaps: local map = decoder map and the 39 heatmaps concatenated (48 + 39 channels).
            Without it the heatmap head (a 3x3 conv at 64x64, ~7% of the time) is pruned too.
        with_landmarks: global vector = the 1,152 values and the 195 + 117 landmark outputs (1,464).
            The landmark heads always run (they are cheap) and ``extract`` always returns them.
        channels_last: run in torch's channels-last memory format (faster on CPU; see ``TFLiteGraph``).
        chunk_size: crops run through the graph together. A batch is cut into chunks of this size: on CPU
            the activations of 2-4 crops stay in cache, 16 do not (30-40% slower per crop at 16).

    The trunk holds no parameters (weights are non-persistent buffers: not trained, not saved with a
    checkpoint) and always runs in eval mode; ``train(True)`` leaves it as it is.
    """

    name = "blazepose"
    input_size = INPUT_SIZE

    def __init__(self, path: str | Path | None = None, sha256: str | None = TRUNK_SHA256,
                 with_heatmaps: bool = False, with_landmarks: bool = False, channels_last: bool = True,
                 chunk_size: int = 4):
        super().__init__()
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = chunk_size
        data = read_trunk_file(path, sha256)
        try:
            model = read_tflite(data)
        except ValueError as e:
            raise CheckpointError(f"cannot parse the blazepose trunk file: {e}") from e
        self.with_heatmaps, self.with_landmarks = with_heatmaps, with_landmarks
        self.local_dim = 48 + (NUM_LANDMARKS if with_heatmaps else 0)
        self.global_dim = 2 * 2 * 288 + (NUM_LANDMARKS * 8 if with_landmarks else 0)
        outputs = [DECODER_MAP, GLOBAL_VECTOR, LANDMARKS, WORLD_LANDMARKS, POSE_FLAG] + ([HEATMAPS] * with_heatmaps)
        self.graph = TFLiteGraph(model, outputs, channels_last=channels_last)
        mean, std = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        super().train(False)

    def train(self, mode: bool = True) -> BlazePoseTrunk:
        """Frozen: stays in eval mode whatever ``mode`` says."""
        return super().train(False)

    @property
    def num_weights(self) -> int:
        """The trunk's weight count (3.17 M; none of them are trainable parameters)."""
        return self.graph.num_weights

    def to_trunk_input(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised crops (B, 3, 256, 256) -> the trunk's RGB in [0, 1], (B, 3, 256, 256)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        if tuple(images.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            size = tuple(images.shape[-2:])
            raise ValueError(f"the blazepose trunk needs {INPUT_SIZE}x{INPUT_SIZE} crops, got {size}")
        return (images * self.std + self.mean).clamp_(0.0, 1.0)

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every output of the trunk for ImageNet-normalised crops ``images`` (B, 3, 256, 256).

        Returns:
            ``decoder``: (B, 48, 64, 64) decoder map; ``global``: (B, 1152) pooled vector (NHWC order);
            ``heatmaps``: (B, 39, 64, 64) (only ``with_heatmaps``); ``landmarks``: (B, 39, 5) x, y (crop
            pixels), z, visibility and presence logits; ``world``: (B, 39, 3) metres, hip-centred;
            ``pose_flag``: (B,) in [0, 1].
        """
        x = self.to_trunk_input(images)  # (B, 3, 256, 256) in [0, 1]
        if x.shape[0] <= self.chunk_size:
            out = self.graph(x)
        else:
            parts = [self.graph(c) for c in x.split(self.chunk_size)]
            out = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        b = images.shape[0]
        result = {
            "decoder": out[DECODER_MAP],  # (B, 48, 64, 64)
            "global": out[GLOBAL_VECTOR].permute(0, 2, 3, 1).flatten(1),  # (B, 2 * 2 * 288), NHWC order
            "landmarks": out[LANDMARKS].reshape(b, NUM_LANDMARKS, 5),  # (B, 39, 5)
            "world": out[WORLD_LANDMARKS].reshape(b, NUM_LANDMARKS, 3),  # (B, 39, 3)
            "pose_flag": out[POSE_FLAG].reshape(b),  # (B,)
        }
        if self.with_heatmaps:
            result["heatmaps"] = out[HEATMAPS]  # (B, 39, 64, 64)
        return result

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, 256, 256), ImageNet-normalised -> global (B, global_dim), local (B, local_dim, 64, 64)."""
        out = self.extract(images)
        local_map = out["decoder"]  # (B, 48, 64, 64)
        global_vec = out["global"]  # (B, 1152)
        if self.with_heatmaps:
            local_map = torch.cat([local_map, out["heatmaps"]], dim=1)  # (B, 87, 64, 64)
        if self.with_landmarks:
            global_vec = torch.cat([global_vec, out["landmarks"].flatten(1), out["world"].flatten(1)], dim=1)
        return global_vec, local_map
