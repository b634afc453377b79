"""Real training data in the preprocessed ``.npz`` layout of SPIN / VIBE / TCMR / CLIFF-style codebases.

Those codebases ship one ``.npz`` per dataset split (3DPW, Human3.6M, MPI-INF-3DHP, COCO-EFT, ...) holding
per-sample arrays; the images stay in their own folder. ``PreprocessedDataset`` reads such a file as a ``torch``
dataset with exactly the item dict of ``tar_core.training.dataset.ClipDataset``, so both can be mixed in one loader.

Keys of a file (N samples):

- ``imgname`` (N,) str, image paths relative to ``image_root``;
- ``center`` (N, 2) and ``scale`` (N,): the person box, centre in pixels and side ``200 * scale`` pixels;
- ``pose`` (N, 72) SMPL axis-angle, ``shape`` (N, 10) SMPL betas, ``has_smpl`` (N,) 0/1;
- ``part`` (N, J, 3) 2D keypoints (x, y, confidence) in full-image pixels;
- optional ``S`` (N, J, 4) 3D joints in metres plus confidence; a sample has 3D when any confidence is > 0;
- optional ``vid_name`` or ``sequence`` (N,) str, sequence ids (video datasets);
- optional ``focal_length`` (N,) pixels; optional ``img_size`` (N, 2) as (width, height) or ``orig_shape``
  (N, 2) as (height, width). Without a size the image file is read once and its size cached.

Joint order: the keypoints of ``part`` and ``S`` are taken to be the 24 SMPL joints in the order of
``tar_core.body_model.JOINT_NAMES`` (pelvis, left_hip, right_hip, spine1, ...). Files with another joint set
(SPIN's 49 joints, COCO's 17, H36M's 17, ...) must be mapped by the caller: pass ``joint_map``, 24 indices into
the file's joint axis, one per SMPL joint, with -1 where the file has no such joint. A missing joint reads as
(0, 0) / (0, 0, 0) with confidence 0. The 3D loss of ``tar_core.training.losses`` masks by ``has_3d`` only, so a 3D
target should cover every joint the loss uses (in particular the hips, for mid-hip alignment).

Windows: an item is ``seq_len`` frames centred on sample k. With sequence ids, the neighbours are the samples of
the same sequence in file order (they need not be contiguous in the file; ids should tell persons apart, e.g.
``vid_name`` plus person index); before a sequence's start / after its end the first / last sample repeats. An
image dataset (no sequence ids, or ``image_dataset=True``) repeats the single image ``seq_len`` times, as the TAR
paper does for COCO and MPII.

Crops: each frame is cut with ``CropBox(center, 200 * scale)`` (the file's box as is, no extra scaling) to
256 x 256 by ``tar_core.geometry.cropping.crop`` and ImageNet-normalised. Intrinsics: ``focal_length`` when the file has
it, else the image diagonal; the principal point is the image centre.

The file is loaded with ``allow_pickle=False``; string arrays must be unicode arrays, not object arrays
(convert with ``np.asarray(x, dtype=str)``).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from tar_core.body_model import NUM_BETAS, NUM_JOINTS
from tar_core.errors import DatasetError
from tar_core.geometry.camera import CROP_SIZE, default_focal, default_principal_point
from tar_core.geometry.cropping import CropBox, crop, normalize
from tar_core.geometry.rotations import axis_angle_to_matrix

__all__ = ["BOX_PIXELS_PER_SCALE", "PreprocessedDataset", "load_preprocessed"]

BOX_PIXELS_PER_SCALE = 200.0
_REQUIRED = ("imgname", "center", "scale", "pose", "shape", "has_smpl", "part")
_SEQUENCE_KEYS = ("vid_name", "sequence")


def load_preprocessed(npz_path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of a preprocessed file, checked for the keys and shapes of the layout (module docstring)."""
    npz_path = Path(npz_path)
    try:
        z = np.load(npz_path, allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"preprocessed file not found: {str(npz_path)!r}") from None
    with z:
        arrays = {}
        for key in z.files:
            try:
                arrays[key] = z[key]
            except ValueError as e:
                if "allow_pickle" not in str(e):
                    raise
                raise DatasetError(
                    f"{str(npz_path)!r}: array {key!r} is an object array, which is not loaded "
                    f"(allow_pickle=False); store strings as unicode arrays, e.g. "
                    f"np.savez(path, {key}=np.asarray(x, dtype=str), ...)"
                ) from None
    missing = [k for k in _REQUIRED if k not in arrays]
    if missing:
        raise DatasetError(f"{str(npz_path)!r} lacks the keys {missing}")
    n = len(arrays["imgname"])
    shapes = {"center": (n, 2), "scale": (n,), "pose": (n, 72), "shape": (n, NUM_BETAS), "has_smpl": (n,)}
    for key, shape in shapes.items():
        if arrays[key].shape != shape:
            raise DatasetError(f"{str(npz_path)!r}: {key!r} must have shape {shape}, got {arrays[key].shape}")
    part = arrays["part"]
    if part.ndim != 3 or part.shape[0] != n or part.shape[2] != 3:
        raise DatasetError(f"{str(npz_path)!r}: 'part' must have shape ({n}, J, 3), got {part.shape}")
    if "S" in arrays:
        S = arrays["S"]
        if S.ndim != 3 or S.shape[0] != n or S.shape[2] != 4:
            raise DatasetError(f"{str(npz_path)!r}: 'S' must have shape ({n}, J, 4), got {S.shape}")
    for key in ("imgname", *_SEQUENCE_KEYS):
        if key in arrays and (arrays[key].shape != (n,) or arrays[key].dtype.kind not in "US"):
            raise DatasetError(f"{str(npz_path)!r}: {key!r} must be a ({n},) string array, got "
                             f"{arrays[key].dtype} {arrays[key].shape}")  # fmt: skip
    if "focal_length" in arrays and arrays["focal_length"].shape != (n,):
        raise DatasetError(f"{str(npz_path)!r}: 'focal_length' must have shape ({n},)")
    for key in ("img_size", "orig_shape"):
        if key in arrays and arrays[key].shape != (n, 2):
            raise DatasetError(f"{str(npz_path)!r}: {key!r} must have shape ({n}, 2)")
    return arrays


def _check_joint_map(joint_map, n_source: int) -> np.ndarray | None:
    if joint_map is None:
        if n_source != NUM_JOINTS:
            raise DatasetError(f"the file has {n_source} joints, not the {NUM_JOINTS} SMPL joints: pass joint_map")
        return None
    jm = np.asarray(joint_map)
    if jm.shape != (NUM_JOINTS,) or jm.dtype.kind not in "iu":
        raise DatasetError(f"joint_map must be {NUM_JOINTS} integer indices, got {jm.dtype} {jm.shape}")
    jm = jm.astype(np.int64)
    if np.any(jm < -1) or np.any(jm >= n_source):
        raise DatasetError(f"joint_map indices must lie in -1..{n_source - 1}, got {jm.tolist()}")
    return jm


def _remap(x: np.ndarray, joint_map: np.ndarray | None) -> np.ndarray:
    """(J, C) joints with the confidence last -> (24, C) in SMPL order; missing joints all zero."""
    if joint_map is None:
        return x
    out = np.zeros((NUM_JOINTS, x.shape[1]), dtype=x.dtype)
    ok = joint_map >= 0
    out[ok] = x[joint_map[ok]]
    return out


class PreprocessedDataset(Dataset):
    """Windows of ``seq_len`` crops centred on every sample of a preprocessed ``.npz`` (module docstring), with
    the middle sample's targets.

    ``image_root`` is the folder the ``imgname`` paths are relative to. ``image_dataset``: None decides by the
    file (sequence ids present -> video), True repeats every image ``seq_len`` times even with sequence ids,
    False demands sequence ids. ``joint_map`` (24,) maps the file's joints to the SMPL order: entry j is the
    file's index of SMPL joint j, -1 when missing (confidence 0).

    An item is a dict of float32 tensors: ``images`` (T, 3, 256, 256) ImageNet-normalised; for the middle sample
    ``joints_2d`` (24, 2) full-image pixels, ``joints_2d_conf`` (24,), ``joints_3d`` (24, 3) metres (zeros when
    ``has_3d`` is 0), ``has_3d`` (), ``rotmat`` (24, 3, 3), ``betas`` (10,), ``has_smpl`` (), ``center`` (2,),
    ``size`` () box side in pixels, ``focal`` () and ``principal`` (2,).
    """

    cache_size = 16  # decoded images kept (an item reads up to seq_len of them)

    def __init__(
        self,
        npz_path: str | Path,
        image_root: str | Path,
        seq_len: int = 9,
        image_dataset: bool | None = None,
        joint_map: np.ndarray | None = None,
    ):
        if seq_len < 1:
            raise DatasetError(f"seq_len must be >= 1, got {seq_len}")
        self.npz_path = Path(npz_path)
        self.image_root = Path(image_root)
        self.seq_len = int(seq_len)
        a = load_preprocessed(self.npz_path)
        n = len(a["imgname"])
        self.imgname = a["imgname"].astype(str)
        self.center = a["center"].astype(np.float64)
        self.box_size = a["scale"].astype(np.float64) * BOX_PIXELS_PER_SCALE
        if n and not (np.all(np.isfinite(self.box_size)) and np.all(self.box_size > 0)):
            raise DatasetError(f"{str(self.npz_path)!r}: every 'scale' must be finite and > 0")
        self.pose = a["pose"].astype(np.float64)
        self.betas = a["shape"].astype(np.float32)
        self.has_smpl = (a["has_smpl"] > 0).astype(np.float32)

        self.joint_map = _check_joint_map(joint_map, a["part"].shape[1])
        if "S" in a and a["S"].shape[1] != a["part"].shape[1]:
            raise DatasetError(f"'part' has {a['part'].shape[1]} joints but 'S' has {a['S'].shape[1]}")
        self.part = a["part"].astype(np.float32)
        self.S = a["S"].astype(np.float32) if "S" in a else None

        self.focal_length = a["focal_length"].astype(np.float64) if "focal_length" in a else None
        if "img_size" in a:
            self.image_wh = a["img_size"].astype(np.float64)
        elif "orig_shape" in a:
            self.image_wh = a["orig_shape"][:, ::-1].astype(np.float64)
        else:
            self.image_wh = None

        seq_key = next((k for k in _SEQUENCE_KEYS if k in a), None)
        if image_dataset is False and seq_key is None:
            raise DatasetError(f"{str(self.npz_path)!r} has no sequence ids ({' or '.join(_SEQUENCE_KEYS)}), "
                             "so it cannot be read as a video dataset")  # fmt: skip
        self.image_dataset = bool(image_dataset) if image_dataset is not None else seq_key is None
        # Per sample: the file indices of its sequence (in file order) and its place in them.
        self._members: list[np.ndarray] = []
        self._seq_of = np.zeros(n, dtype=np.int64)
        self._pos = np.zeros(n, dtype=np.int64)
        if not self.image_dataset:
            ids = a[seq_key].astype(str)
            _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
            order = np.argsort(first)  # sequences numbered in order of first appearance
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            self._seq_of = rank[inverse.reshape(-1)]
            for s in range(len(order)):
                members = np.flatnonzero(self._seq_of == s)
                self._members.append(members)
                self._pos[members] = np.arange(len(members))

        self._sizes: dict[str, tuple[int, int]] = {}
        self._images: OrderedDict[str, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.imgname)

    def window(self, k: int) -> np.ndarray:
        """File indices of the ``seq_len`` frames of item ``k`` (the middle one is ``k``)."""
        n = len(self)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError(f"index {k} out of range for {n} samples")
        if self.image_dataset:
            return np.full(self.seq_len, k, dtype=np.int64)
        members = self._members[self._seq_of[k]]
        pos = np.clip(self._pos[k] + np.arange(self.seq_len) - self.seq_len // 2, 0, len(members) - 1)
        return members[pos]

    def image_path(self, i: int) -> Path:
        return self.image_root / self.imgname[i]

    def _read(self, i: int) -> np.ndarray:
        """Image of sample ``i`` as (H, W, 3) uint8 RGB, from a small cache of decoded images."""
        name = self.imgname[i]
        if name in self._images:
            self._images.move_to_end(name)
            return self._images[name]
        path = self.image_path(i)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DatasetError(f"image {str(path)!r} of sample {i} is missing or unreadable")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self._sizes[name] = (rgb.shape[1], rgb.shape[0])
        self._images[name] = rgb
        while len(self._images) > self.cache_size:
            self._images.popitem(last=False)
        return rgb

    def image_size(self, i: int) -> tuple[float, float]:
        """(width, height) of sample ``i``'s image: from the file's arrays, else read once and cached."""
        if self.image_wh is not None:
            w, h = self.image_wh[i]
            return float(w), float(h)
        name = self.imgname[i]
        if name not in self._sizes:
            self._read(i)
        w, h = self._sizes[name]
        return float(w), float(h)

    def box(self, i: int) -> CropBox:
        """The crop box of sample ``i``: centre and side ``200 * scale`` pixels, as in the file."""
        return CropBox(self.center[i], self.box_size[i])

    def targets(self, k: int) -> dict[str, np.ndarray]:
        """Joint targets of sample ``k`` in SMPL order: ``joints_2d``, ``joints_2d_conf``, ``joints_3d``,
        ``has_3d`` as float32 arrays."""
        part = _remap(self.part[k], self.joint_map)
        conf = part[:, 2].copy()
        conf[~(conf > 0)] = 0.0  # negative or NaN confidences mean "not annotated"
        joints_3d = np.zeros((NUM_JOINTS, 3), dtype=np.float32)
        has_3d = 0.0
        if self.S is not None:
            S = _remap(self.S[k], self.joint_map)
            if np.any(S[:, 3] > 0):
                joints_3d, has_3d = S[:, :3].copy(), 1.0
        return {"joints_2d": part[:, :2].copy(), "joints_2d_conf": conf, "joints_3d": joints_3d,
                "has_3d": np.float32(has_3d)}  # fmt: skip

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        window = self.window(int(k))
        k = int(window[self.seq_len // 2])
        crops: dict[int, np.ndarray] = {}
        for i in window:
            i = int(i)
            if i not in crops:
                crops[i] = crop(self._read(i), self.box(i), CROP_SIZE)
        images = normalize(np.stack([crops[int(i)] for i in window]))

        w, h = self.image_size(k)
        focal = self.focal_length[k] if self.focal_length is not None else default_focal(w, h)
        tg = self.targets(k)

        def t(x) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x, dtype=np.float32))

        return {
            "images": images,
            "joints_2d": t(tg["joints_2d"]),
            "joints_2d_conf": t(tg["joints_2d_conf"]),
            "joints_3d": t(tg["joints_3d"]),
            "has_3d": t(tg["has_3d"]),
            "rotmat": t(axis_angle_to_matrix(self.pose[k].reshape(NUM_JOINTS, 3))),
            "betas": t(self.betas[k]),
            "has_smpl": t(self.has_smpl[k]),
            "center": t(self.center[k]),
            "size": t(self.box_size[k]),
            "focal": t(focal),
            "principal": t(default_principal_point(w, h)),
        }
