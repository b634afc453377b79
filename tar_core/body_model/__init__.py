"""Body models in the SMPL layout (licensed SMPL files, or the built-in mannequin)."""

from .model import (
    BODY_MODEL_ENV,
    JOINT_NAMES,
    MANNEQUIN_PATH,
    NUM_BETAS,
    NUM_JOINTS,
    PARENTS,
    SMPL_MARKER_IDS,
    BodyModel,
    BodyModelData,
    BodyModelError,
    BodyOutput,
    convert_smpl_file,
    load_body_model,
    load_body_model_data,
)
from .smpl_pickle import UnsafePickleError, load_smpl_pickle

__all__ = [
    "BODY_MODEL_ENV",
    "JOINT_NAMES",
    "MANNEQUIN_PATH",
    "NUM_BETAS",
    "NUM_JOINTS",
    "PARENTS",
    "SMPL_MARKER_IDS",
    "BodyModel",
    "BodyModelData",
    "BodyModelError",
    "BodyOutput",
    "UnsafePickleError",
    "convert_smpl_file",
    "load_body_model",
    "load_body_model_data",
    "load_smpl_pickle",
]
