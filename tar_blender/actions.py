"""Read an object's action back as arrays, and smooth a motion into a copy (the raw action stays).

Thin bpy code: whole fcurves move through ``foreach_get`` / ``foreach_set``; the filtering is
``logic.smoothing``.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import rig
from .logic.keys import Curve, _co
from .logic.smoothing import smooth_quaternions, smooth_series

__all__ = ["action_fcurves", "read_curves", "smooth_copy"]


def action_fcurves(obj, action=None):
    """The fcurves that animate ``obj`` in ``action`` (default: its active one), or []."""
    ad = obj.animation_data
    action = action or (ad.action if ad else None)
    if action is None:
        return []
    if hasattr(action, "fcurves") and not hasattr(action, "layers"):  # Blender 4.2 / 4.3
        return list(action.fcurves)
    from bpy_extras import anim_utils

    slot = ad.action_slot if ad and ad.action == action else None
    if slot is None and len(action.slots):
        slot = action.slots[0]
    bag = anim_utils.action_get_channelbag_for_slot(action, slot) if slot is not None else None
    return list(bag.fcurves) if bag is not None else []


def read_curves(obj, action=None) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray, str]]:
    """{(data_path, index): (frames, values, group name)} of the object's action, float64."""
    out = {}
    for fc in action_fcurves(obj, action):
        n = len(fc.keyframe_points)
        co = np.empty(2 * n, dtype=np.float32)
        fc.keyframe_points.foreach_get("co", co)
        co = co.astype(np.float64)
        out[(fc.data_path, fc.array_index)] = (co[0::2], co[1::2], fc.group.name if fc.group else "")
    return out


def smooth_copy(obj, strength: float, name: str | None = None):
    """Smooth the object's active action into a new action that becomes the active one.

    ``strength``: the Gaussian's sigma in keys (0 = a plain copy). Quaternion channels are
    filtered together as rotations (one hemisphere, renormalised), everything else per curve.
    The raw action is kept (fake user) and named in ``obj["tar_raw_action"]``.
    Returns the new action.
    """
    ad = obj.animation_data
    raw = ad.action if ad else None
    if raw is None:
        raise ValueError(f"{obj.name} has no action to smooth")
    curves = read_curves(obj)
    done: set[tuple[str, int]] = set()
    out: list[Curve] = []
    for (path, index), (frames, _values, group) in curves.items():
        if (path, index) in done:
            continue
        quat = [curves.get((path, c)) for c in range(4)]
        if path.endswith("rotation_quaternion") and all(q is not None for q in quat) and all(
                len(q[0]) == len(frames) and np.array_equal(q[0], frames) for q in quat):
            q = smooth_quaternions(np.stack([c[1] for c in quat], axis=1), strength)
            out += [Curve(path, c, group, _co(frames, q[:, c])) for c in range(4)]
            done.update((path, c) for c in range(4))
        else:
            out.append(Curve(path, index, group, _co(frames, smooth_series(curves[(path, index)][1], strength))))
            done.add((path, index))
    raw.use_fake_user = True
    obj["tar_raw_action"] = raw.name
    action = rig.write_curves(obj, name or f"{raw.name}_smooth", out)
    action["tar_smoothing"] = float(strength)
    return action


def use_raw(obj) -> bool:
    """Make the kept raw action the active one again; False when there is none."""
    raw = bpy.data.actions.get(obj.get("tar_raw_action", ""))
    if raw is None:
        return False
    obj.animation_data.action = raw
    return True
