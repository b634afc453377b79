"""The SMPL skeleton and the body's rest shape, computed with numpy from the model arrays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["JOINT_NAMES", "PARENTS", "BodyArrays", "find_mannequin", "load_body_arrays"]

JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)  # fmt: skip
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
_MANNEQUIN = Path("tar_core") / "body_model" / "data" / "mannequin.npz"


@dataclass
class BodyArrays:
    kind: str
    v_template: np.ndarray  # (V, 3) T-pose, SMPL frame (y up, facing +z)
    shapedirs: np.ndarray  # (V, 3, 10)
    J_regressor: np.ndarray  # (24, V)
    weights: np.ndarray  # (V, 24)
    faces: np.ndarray  # (F, 3)

    def rest_vertices(self, betas: np.ndarray) -> np.ndarray:
        """(V, 3) shaped T-pose."""
        return self.v_template + self.shapedirs[:, :, : len(betas)] @ np.asarray(betas, dtype=np.float64)

    def rest_joints(self, betas: np.ndarray) -> np.ndarray:
        """(24, 3) joints of the shaped T-pose."""
        return self.J_regressor @ self.rest_vertices(betas)


def find_mannequin() -> Path:
    """The mannequin data file: inside the installed add-on (which ships tar_core's data) or the repo."""
    here = Path(__file__).resolve().parent
    for root in (here.parent, here.parent.parent):  # add-on root / repository root
        if (root / _MANNEQUIN).is_file():
            return root / _MANNEQUIN
    raise FileNotFoundError("the mannequin body data (tar_core/body_model/data/mannequin.npz) is missing")


def load_body_arrays(kind: str, smpl_path: str | Path | None = None) -> BodyArrays:
    """The arrays of the body a motion file names: the mannequin, or SMPL from ``smpl_path`` (.npz)."""
    if kind == "mannequin":
        path = find_mannequin()
    elif kind == "smpl":
        if not smpl_path:
            raise FileNotFoundError("this motion uses SMPL: set the SMPL model file in the add-on preferences")
        path = Path(smpl_path)
        if path.suffix.lower() != ".npz":
            raise ValueError(f"{path.name}: the add-on reads SMPL as .npz (convert with the engine's smpl-convert)")
    else:
        raise ValueError(f"unknown body model {kind!r}")
    with np.load(path, allow_pickle=False) as z:
        return BodyArrays(
            kind=kind, v_template=z["v_template"].astype(np.float64),
            shapedirs=z["shapedirs"][:, :, :10].astype(np.float64),
            J_regressor=np.asarray(z["J_regressor"], dtype=np.float64), weights=z["weights"].astype(np.float64),
            faces=z["f"].astype(np.int64),
        )  # fmt: skip
