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

__all__ = ["action_fcurves", "current_action", "read_curves", "set_current_action", "smooth_copy"]


def _take_strip(obj):
    """The NLA strip that holds the object's capture take (named in ``obj["tar_take"]``), or None."""
    ad = obj.animation_data
    track = ad.nla_tracks.get(obj.get("tar_take", "")) if ad else None
    return track.strips[0] if track is not None and len(track.strips) else None


def current_action(obj):
    """The object's motion: its active action, else the action of its capture take's NLA strip."""
    ad = obj.animation_data
    if ad is not None and ad.action is not None:
        return ad.action
    strip = _take_strip(obj)
    return strip.action if strip is not None else None


def set_current_action(obj, action) -> None:
    """Put ``action`` where ``current_action`` finds it: in the take's strip when the object has one."""
    strip = _take_strip(obj)
    ad = obj.animation_data or obj.animation_data_create()
    if strip is not None and ad.action in (None, action):
        strip.action = action
        ad.action = None
    else:
        ad.action = action


def action_fcurves(obj, action=None):
    """The fcurves that animate ``obj`` in ``action`` (default: ``current_action``), or []."""
    ad = obj.animation_data
    action = action or current_action(obj)
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
    raw = current_action(obj)
    if raw is None:
        raise ValueError(f"{obj.name} has no action to smooth")
    curves = read_curves(obj)
    done: set[tuple[str, int]] = set()
    out: list[Curve] = []
    for (path, index), (frames, _values, group) in curves.items():
        if (path, index) in done:
            continue
        quat = [q for c in range(4) if (q := curves.get((path, c))) is not None]
        if path.endswith("rotation_quaternion") and len(quat) == 4 and all(
                len(q[0]) == len(frames) and np.array_equal(q[0], frames) for q in quat):
            q = smooth_quaternions(np.stack([c[1] for c in quat], axis=1), strength)
            out += [Curve(path, c, group, _co(frames, q[:, c])) for c in range(4)]
            done.update((path, c) for c in range(4))
        else:
            out.append(Curve(path, index, group, _co(frames, smooth_series(curves[(path, index)][1], strength))))
            done.add((path, index))
    raw.use_fake_user = True
    obj["tar_raw_action"] = raw.name
    ad = obj.animation_data
    pushed = ad is not None and ad.action is None  # the raw take sits in an NLA strip
    action = rig.write_curves(obj, name or f"{raw.name}_smooth", out)
    action["tar_smoothing"] = float(strength)
    if pushed:
        set_current_action(obj, action)
    return action


def use_raw(obj) -> bool:
    """Make the kept raw action the active one again; False when there is none."""
    raw = bpy.data.actions.get(obj.get("tar_raw_action", ""))
    if raw is None:
        return False
    set_current_action(obj, raw)
    return True
