"""Image backbones: one global vector and one 1/4-resolution local feature map per frame.

Every backbone maps ImageNet-normalised crops ``(B, 3, H, W)`` (H, W multiples of 32; 256x256 in
TAR) to ``(global_vec, local_map)``: ``(B, global_dim)`` and ``(B, local_dim, H/4, W/4)``.

- ``resnet50``: ResNet-50 (v1.5) with torchvision's parameter names; global = average-pooled
  layer4 (2048); local = SimpleBaseline deconvolution head on layer4 (256 channels).
- ``hrnet48`` / ``hrnet32``: HRNet with the parameter names of the official pose_hrnet
  (deep-high-resolution-net.pytorch). As in ReFit, the last stage keeps all four resolutions,
  the coarse branches are brought to 1/4 by bilinear x2 steps (each followed by a 3x3 conv, BN,
  ReLU) and concatenated (15W channels: 720 for W48); the global vector comes from a strided-conv
  path that walks the branches down to 1/32 and is average-pooled (8W channels: 384 for W48).
- ``tiny``: a small CNN for CPU tests and the demo.
- ``blazepose``: the frozen BlazePose GHUM 3D trunk read from the installed mediapipe wheel
  (``tar_core.network.blazepose``); global = its 2x2x288 pooled vector (1,152), local = its 64x64x48
  decoder map. It holds no parameters: checkpoints of a model on it carry the heads only.

Layers that the public checkpoint lacks (heads, and the extra stage-4 fusions of HRNet) are listed
by ``Backbone.new_prefixes``; ``load_backbone_weights`` fills everything else by name.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tar_core.errors import CheckpointError, one_line
from tar_core.network.config import BACKBONE_NAMES

__all__ = [
    "BACKBONE_NAMES",
    "Backbone",
    "BlazePoseBackbone",
    "HRNetBackbone",
    "ResNet50Backbone",
    "TinyBackbone",
    "build_backbone",
    "load_backbone_weights",
]

_STRIPPED_PREFIXES = ("module.", "backbone.")  # DataParallel / full-model checkpoints
_NESTING_KEYS = ("state_dict", "model")
_MAX_LISTED = 20  # names quoted in an error message


# --------------------------------------------------------------------------------------------- base
class Backbone(nn.Module):
    """Per-frame image encoder: ``forward(images) -> (global_vec, local_map)``.

    Attributes:
        name: registry name (see ``BACKBONE_NAMES``).
        global_dim: size of the per-frame global vector.
        local_dim: channels of the local feature map (1/4 of the input resolution).
        new_prefixes: state-dict prefixes of layers the public checkpoint does not hold;
            they keep their fresh initialisation when weights are loaded.
    """

    name: str = ""
    global_dim: int = 0
    local_dim: int = 0
    new_prefixes: tuple[str, ...] = ()
    frozen: bool = False  # a pretrained trunk that training never changes

    def is_new_key(self, key: str) -> bool:
        """True when state-dict entry ``key`` belongs to a layer absent from the public checkpoint."""
        return bool(self.new_prefixes) and key.startswith(self.new_prefixes)

    def trunk_keys(self) -> list[str]:
        """State-dict entries (parameters and buffers) that the public checkpoint provides."""
        return [k for k in self.state_dict() if not self.is_new_key(k)]

    @staticmethod
    def _check_input(images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        if images.shape[-2] % 32 or images.shape[-1] % 32:
            raise ValueError(f"image height and width must be multiples of 32, got {tuple(images.shape[-2:])}")


# --------------------------------------------------------------------------------------------- blocks
def _init_weights(module: nn.Module) -> None:
    """He-normal convs, unit BN, zero last BN of every residual block (torchvision's zero_init_residual).

    Every conv feeds a BN, so this only matters in eval mode with fresh statistics (tests, untrained
    runs): the official N(0, 0.001) init of pose_hrnet/SimpleBaseline shrinks activations into
    denormal floats (very slow on CPU), plain He init lets HRNet's residual sums grow to ~1e9;
    identity-at-start residual blocks keep them moderate.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn3.weight)
        elif isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


def _conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """conv -> BN (-> ReLU), indexed .0 / .1 like the official Sequential blocks."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (carries the stride: ResNet v1.5) -> 1x1 x4 residual block, torchvision names."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        # Projection shortcut only where the shape changes (block 0 of each layer).
        self.downsample = _conv_bn(inplanes, out, 1, stride, relu=False) if stride != 1 or inplanes != out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut (HRNet branches keep their width)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _conv3x3(channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + x)


def _bottleneck_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(inplanes, planes, stride)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------------------------- ResNet-50
class ResNet50Backbone(Backbone):
    """ResNet-50 trunk (torchvision names, ``fc`` dropped) + SimpleBaseline deconv head (``deconv.*``)."""

    name = "resnet50"
    global_dim = 2048
    local_dim = 256
    new_prefixes = ("deconv.",)

    def __init__(self, deconv_channels: int = 256):
        super().__init__()
        self.local_dim = deconv_channels
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _bottleneck_layer(64, 64, 3, 1)
        self.layer2 = _bottleneck_layer(256, 128, 4, 2)
        self.layer3 = _bottleneck_layer(512, 256, 6, 2)
        self.layer4 = _bottleneck_layer(1024, 512, 3, 2)
        # 1/32 -> 1/4: three (4x4 transposed conv, stride 2) steps, as in SimpleBaseline.
        deconv: list[nn.Module] = []
        cin = 2048
        for _ in range(3):
            deconv += [
                nn.ConvTranspose2d(cin, deconv_channels, 4, 2, 1, bias=False),
                nn.BatchNorm2d(deconv_channels),
                nn.ReLU(inplace=True),
            ]
            cin = deconv_channels
        self.deconv = nn.Sequential(*deconv)
        _init_weights(self)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, H, W) -> global (B, 2048), local (B, 256, H/4, W/4)."""
        self._check_input(images)
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))  # (B, 64, H/4, W/4)
        x = self.layer1(x)  # (B, 256, H/4, W/4)
        x = self.layer2(x)  # (B, 512, H/8, W/8)
        x = self.layer3(x)  # (B, 1024, H/16, W/16)
        x = self.layer4(x)  # (B, 2048, H/32, W/32)
        global_vec = x.mean(dim=(2, 3))  # (B, 2048)
        local_map = self.deconv(x)  # (B, 256, H/4, W/4)
        return global_vec, local_map


# --------------------------------------------------------------------------------------------- HRNet
def _fuse_path(widths: list[int], src: int, dst: int) -> nn.Module:
    """Map branch ``src`` onto branch ``dst`` (official layout of ``fuse_layers.dst.src``)."""
    if src == dst:
        return nn.Identity()
    if src > dst:  # coarser -> finer: 1x1 conv + BN here, nearest upsampling in forward
        return _conv_bn(widths[src], widths[dst], 1, 1, relu=False)
    steps = dst - src  # finer -> coarser: strided 3x3 convs, the last one changes the width (no ReLU)
    return nn.Sequential(
        *[
            _conv_bn(widths[src], widths[dst] if k == steps - 1 else widths[src], 3, 2, relu=k < steps - 1)
            for k in range(steps)
        ]
    )


class HRModule(nn.Module):
    """One HRNet exchange unit: parallel BasicBlock branches, then fusion across resolutions."""

    def __init__(self, widths: list[int], num_blocks: int = 4, multi_scale_output: bool = True):
        super().__init__()
        n = len(widths)
        self.branches = nn.ModuleList(nn.Sequential(*[BasicBlock(w) for _ in range(num_blocks)]) for w in widths)
        outputs = n if multi_scale_output else 1
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(_fuse_path(widths, j, i) for j in range(n)) for i in range(outputs)
        )
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]  # branch i: (B, C_i, H_i, W_i)
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = None
            for j, path in enumerate(row):  # sum in source order, like the official code
                z = path(xs[j])
                if j > i:
                    z = F.interpolate(z, size=xs[i].shape[-2:], mode="nearest")
                y = z if y is None else y + z
            out.append(self.relu(y))
        return out


def _transition(prev: list[int], cur: list[int]) -> nn.ModuleList:
    """Official ``transitionN``: adapt existing branches, spawn new ones from the coarsest by strided convs."""
    layers: list[nn.Module] = []
    for i, c in enumerate(cur):
        if i < len(prev):
            layers.append(_conv_bn(prev[i], c, 3, 1) if prev[i] != c else nn.Identity())
        else:
            steps = i + 1 - len(prev)
            layers.append(
                nn.Sequential(*[_conv_bn(prev[-1], c if k == steps - 1 else prev[-1], 3, 2) for k in range(steps)])
            )
    return nn.ModuleList(layers)


def _apply_transition(transition: nn.ModuleList, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    # Existing branches are adapted in place; new ones grow from the coarsest existing branch.
    return [t(xs[i] if i < len(xs) else xs[-1]) for i, t in enumerate(transition)]


def _upsampler(channels: int, steps: int) -> nn.Sequential:
    """``steps`` x (bilinear x2, 3x3 conv, BN, ReLU): a coarse branch brought to 1/4 (ReFit)."""
    layers: list[nn.Module] = []
    for _ in range(steps):
        layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), *_conv_bn(channels, channels)]
    return nn.Sequential(*layers)


class HRNetBackbone(Backbone):
    """HRNet-W{width} trunk with the official pose_hrnet parameter names, plus ReFit-style heads.

    New layers (not in the COCO-keypoint checkpoint): ``upsample.*`` (local map), ``global_path.*``
    (global vector) and ``stage4.2.fuse_layers.{1,2,3}.*``: the official model fuses only into the
    1/4 branch at the very end, here every branch gets its fused output (as in ReFit).
    """

    new_prefixes = (
        "upsample.",
        "global_path.",
        "stage4.2.fuse_layers.1.",
        "stage4.2.fuse_layers.2.",
        "stage4.2.fuse_layers.3.",
    )

    def __init__(self, width: int = 48):
        super().__init__()
        self.name = f"hrnet{width}"
        w = [width, 2 * width, 4 * width, 8 * width]
        self.local_dim = sum(w)  # 15W
        self.global_dim = w[3]  # 8W

        # Stem to 1/4, then four bottlenecks (64 -> 256 channels).
        self.conv1 = _conv3x3(3, 64, 2)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = _conv3x3(64, 64, 2)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _bottleneck_layer(64, 64, 4, 1)
        # Stages 2-4: 1, 4 and 3 modules over 2, 3 and 4 branches.
        self.transition1 = _transition([256], w[:2])
        self.stage2 = nn.Sequential(HRModule(w[:2]))
        self.transition2 = _transition(w[:2], w[:3])
        self.stage3 = nn.Sequential(*[HRModule(w[:3]) for _ in range(4)])
        self.transition3 = _transition(w[:3], w)
        self.stage4 = nn.Sequential(*[HRModule(w) for _ in range(3)])

        # Local map: branches 1..3 up to 1/4 (1, 2, 3 doublings).
        self.upsample = nn.ModuleList(_upsampler(c, k) for k, c in enumerate(w[1:], start=1))
        # Global vector: walk down from 1/4 to 1/32, adding each coarser branch on the way.
        self.global_path = nn.Module()
        self.global_path.down = nn.ModuleList(_conv_bn(c, 2 * c, 3, 2) for c in w[:3])
        self.global_path.final = _conv_bn(w[3], w[3], 1, 1)
        _init_weights(self)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, H, W) -> global (B, 8W), local (B, 15W, H/4, W/4)."""
        self._check_input(images)
        x = self.relu(self.bn1(self.conv1(images)))  # (B, 64, H/2, W/2)
        x = self.relu(self.bn2(self.conv2(x)))  # (B, 64, H/4, W/4)
        x = self.layer1(x)  # (B, 256, H/4, W/4)
        xs = self.stage2(_apply_transition(self.transition1, [x]))
        xs = self.stage3(_apply_transition(self.transition2, xs))
        xs = self.stage4(_apply_transition(self.transition3, xs))  # (B, W * 2^i, H / 2^(i+2), ...), i = 0..3

        ups = [up(x) for up, x in zip(self.upsample, xs[1:], strict=True)]  # each (B, C_i, H/4, W/4)
        local_map = torch.cat([xs[0], *ups], dim=1)  # (B, 15W, H/4, W/4)

        y = xs[0]
        for down, x in zip(self.global_path.down, xs[1:], strict=True):
            y = down(y) + x  # (B, C_{i+1}, H_{i+1}, W_{i+1})
        y = self.global_path.final(y)  # (B, 8W, H/32, W/32)
        global_vec = y.mean(dim=(2, 3))  # (B, 8W)
        return global_vec, local_map


# --------------------------------------------------------------------------------------------- tiny
class TinyBackbone(Backbone):
    """A ~0.3 M-parameter CNN for CPU tests and the demo; all its layers are "trunk" (no public checkpoint)."""

    name = "tiny"

    def __init__(self, local_dim: int = 64, global_dim: int = 128):
        super().__init__()
        self.local_dim = local_dim
        self.global_dim = global_dim
        self.stem = nn.Sequential(
            _conv_bn(3, 16, 3, 2),  # 1/2
            _conv_bn(16, 32, 3, 2),  # 1/4
            _conv_bn(32, 32, 3, 1),
            _conv_bn(32, local_dim, 1, 1),
        )
        self.down = nn.Sequential(
            _conv_bn(local_dim, 64, 3, 2),  # 1/8
            _conv_bn(64, global_dim, 3, 2),  # 1/16
            _conv_bn(global_dim, global_dim, 3, 2),  # 1/32
        )
        _init_weights(self)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, H, W) -> global (B, global_dim), local (B, local_dim, H/4, W/4)."""
        self._check_input(images)
        local_map = self.stem(images)  # (B, local_dim, H/4, W/4)
        global_vec = self.down(local_map).mean(dim=(2, 3))  # (B, global_dim)
        return global_vec, local_map


# --------------------------------------------------------------------------------------------- blazepose
class BlazePoseBackbone(Backbone):
    """The frozen BlazePose trunk behind the backbone interface (weights from the mediapipe wheel, sha256-checked)."""

    name = "blazepose"
    frozen = True

    def __init__(self):
        from tar_core.network.blazepose import BlazePoseTrunk

        super().__init__()
        self.trunk = BlazePoseTrunk()
        self.global_dim, self.local_dim = self.trunk.global_dim, self.trunk.local_dim

    @property
    def num_weights(self) -> int:
        return self.trunk.num_weights

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, 256, 256) ImageNet-normalised -> global (B, 1152), local (B, 48, 64, 64)."""
        with torch.no_grad():
            return self.trunk(images)


# --------------------------------------------------------------------------------------------- factory
def build_backbone(name: str) -> Backbone:
    """A freshly initialised backbone by name (``BACKBONE_NAMES``); ``blazepose`` reads the installed trunk."""
    factories = {
        "resnet50": ResNet50Backbone,
        "hrnet48": lambda: HRNetBackbone(48),
        "hrnet32": lambda: HRNetBackbone(32),
        "tiny": TinyBackbone,
        "blazepose": BlazePoseBackbone,
    }
    if name not in factories:
        raise ValueError(f"unknown backbone {name!r}; expected one of {', '.join(BACKBONE_NAMES)}")
    return factories[name]()


# --------------------------------------------------------------------------------------------- weights
def _strip_prefixes(key: str) -> str:
    while key.startswith(_STRIPPED_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file by (prefix-stripped) name; raw or nested under state_dict/model."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, non-tensor objects, ...
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {one_line(e, 160)}") from e
    while isinstance(obj, dict) and any(isinstance(obj.get(k), dict) for k in _NESTING_KEYS):
        obj = next(obj[k] for k in _NESTING_KEYS if isinstance(obj.get(k), dict))
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            continue  # metadata such as an epoch counter
        name = _strip_prefixes(key)
        if name in state:
            raise CheckpointError(f"checkpoint {path}: {key!r} collides with another entry once prefixes are stripped")
        state[name] = value
    if not state:
        raise CheckpointError(f"checkpoint {path} holds no tensors")
    return state


def _listing(title: str, names: list[str]) -> str:
    more = f" ... and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return f"{len(names)} {title}: " + ", ".join(names[:_MAX_LISTED]) + more


def load_backbone_weights(backbone: Backbone, path: str | Path, strict: bool = True) -> list[str]:
    """Fill the trunk of ``backbone`` from a public checkpoint, matching parameters by name.

    The file is read with ``torch.load(..., weights_only=True)``; the state dict may be raw or
    nested under ``"state_dict"`` / ``"model"``, and ``module.`` / ``backbone.`` prefixes are
    stripped. Only trunk entries are taken: the checkpoint's own heads (torchvision ``fc.*``,
    pose_hrnet ``final_layer.*``) and the backbone's new layers are never mapped. BatchNorm
    ``num_batches_tracked`` counters are optional (old checkpoints lack them).

    Args:
        backbone: the model to fill in place.
        path: checkpoint file.
        strict: if True, every trunk entry must be present with the right shape.

    Returns:
        Names of the backbone's state-dict entries left untouched (its new layers, plus any trunk
        entry skipped when ``strict`` is False), ``num_batches_tracked`` counters excepted.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unreadable file, or (strict) trunk entries missing or of the wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"backbone checkpoint not found: {path}")
    source = _read_state_dict(path)

    own = backbone.state_dict()
    chosen: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    for key, ref in own.items():
        if backbone.is_new_key(key):
            continue
        if key not in source:
            if not key.endswith("num_batches_tracked"):
                missing.append(key)
        elif source[key].shape != ref.shape:
            mismatched.append(f"{key} (checkpoint {tuple(source[key].shape)}, model {tuple(ref.shape)})")
        else:
            chosen[key] = source[key]
    if strict and (missing or mismatched):
        problems = [_listing("missing", missing)] if missing else []
        problems += [_listing("with a wrong shape", mismatched)] if mismatched else []
        raise CheckpointError(f"checkpoint {path} does not fit backbone {backbone.name!r}: " + "; ".join(problems))

    backbone.load_state_dict(chosen, strict=False)
    return [k for k in own if k not in chosen and not k.endswith("num_batches_tracked")]
