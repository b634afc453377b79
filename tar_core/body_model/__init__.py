"""Body models in the SMPL layout: licensed SMPL files (chumpy-free pickle or npz) or the built-in mannequin,
with a vectorised linear-blend-skinning forward.

May import ``geometry``, ``util`` and ``errors`` only.
"""

from tar_core.body_model.model import (
    BODY_MODEL_ENV,
    JOINT_NAMES,
    MANNEQUIN_PATH,
    NUM_BETAS,
    NUM_JOINTS,
    PARENTS,
    SMPL_MARKER_IDS,
    Attached,
    BodyModel,
    BodyModelData,
    BodyOutput,
    convert_smpl_file,
    load_body_model,
    load_body_model_data,
)
from tar_core.body_model.smpl_pickle import load_smpl_pickle

__all__ = [
    "BODY_MODEL_ENV",
    "JOINT_NAMES",
    "MANNEQUIN_PATH",
    "NUM_BETAS",
    "NUM_JOINTS",
    "PARENTS",
    "SMPL_MARKER_IDS",
    "Attached",
    "BodyModel",
    "BodyModelData",
    "BodyOutput",
    "convert_smpl_file",
    "load_body_model",
    "load_body_model_data",
    "load_smpl_pickle",
]
