"""Bone maps from the SMPL-layout capture rig to other rigs (numpy-free, no bpy).

A map says which target bone(s) each SMPL joint drives::

    {
      "format": "tar-bone-map", "version": 1,          # optional
      "name": "my rig",
      "bones": {"pelvis": "Hips", "left_hip": "LeftUpLeg", "spine1": ["Spine", "SpineFK"], ...},
      "root": "Hips",                                  # optional: the bone that carries root motion
      "directions": "joints",                          # optional: how a bone's rest direction is read
      "refs": {"Torso": "SpineFK"},                    # optional: bone whose rest direction stands for another
      "settings": {"Arm_Parent.L": {"IK_FK": 1.0}}     # optional: pose-bone custom properties to set
    }

Built-in maps: Rigify (generated rig controls, deform bones, metarig), Mixamo (``mixamorig:``
names, any ``mixamorigN:`` prefix), SMPL / SMPL-X joint names. ``auto_map`` matches common names
and reports the joints it could not map.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .skeleton import JOINT_NAMES

__all__ = [
    "BUILTIN_MAPS",
    "BoneMap",
    "BoneMapError",
    "auto_map",
    "builtin_map",
    "load_bone_map",
    "parse_bone_map",
    "resolve_bone_map",
]


class BoneMapError(ValueError):
    """A bad bone map, or a rig that lacks bones the map names (``missing`` lists them)."""

    def __init__(self, message: str, missing: list[str] | None = None):
        super().__init__(message)
        self.missing = list(missing or [])


@dataclass
class BoneMap:
    name: str
    bones: dict[str, list[str]]  # SMPL joint -> target bones it drives
    root: str | None = None  # bone carrying the root translation (default: the bone(s) of "pelvis")
    refs: dict[str, str] = field(default_factory=dict)  # target bone -> bone whose rest direction it takes
    settings: dict[str, dict[str, float]] = field(default_factory=dict)  # pose-bone custom properties
    # How the rest direction of a bone is read for the rest-pose correction: "joints" = from its head
    # to the head of the bone the next SMPL joint drives (its Y axis where that joint is not mapped);
    # "bones" = its Y axis (head to tail). Bones in ``refs`` take their ref bone's Y axis.
    directions: str = "joints"

    def pairs(self) -> list[tuple[str, str]]:
        """(joint, target bone) in SMPL joint order."""
        return [(j, b) for j in JOINT_NAMES for b in self.bones.get(j, [])]

    def root_bone(self) -> str | None:
        if self.root:
            return self.root
        pelvis = self.bones.get("pelvis", [])
        return pelvis[0] if pelvis else None

    def named_bones(self) -> list[str]:
        """Every bone the map names (bones, root, refs, settings), each once, in a stable order."""
        names = [b for _, b in self.pairs()]
        names += [self.root] if self.root else []
        names += list(self.refs.values()) + list(self.settings)
        return list(dict.fromkeys(names))

    def missing_in(self, bone_names) -> list[str]:
        have = set(bone_names)
        return [b for b in self.named_bones() if b not in have]

    def check_rig(self, bone_names, rig_name: str = "the target") -> None:
        """Raise BoneMapError listing, in one message, every named bone the rig lacks."""
        missing = self.missing_in(bone_names)
        if missing:
            raise BoneMapError(f"rig '{rig_name}' lacks {len(missing)} bone(s) that the bone map '{self.name}' "
                               f"names: {', '.join(missing)}", missing)

    def renamed(self, fn, name: str | None = None) -> BoneMap:
        return BoneMap(
            name=name or self.name, bones={j: [fn(b) for b in bs] for j, bs in self.bones.items()},
            root=fn(self.root) if self.root else None, refs={fn(k): fn(v) for k, v in self.refs.items()},
            settings={fn(k): dict(v) for k, v in self.settings.items()}, directions=self.directions,
        )  # fmt: skip

    def to_json(self) -> dict:
        out = {"format": "tar-bone-map", "version": 1, "name": self.name,
               "bones": {j: (bs[0] if len(bs) == 1 else list(bs)) for j, bs in self.bones.items()}}
        if self.root:
            out["root"] = self.root
        if self.refs:
            out["refs"] = dict(self.refs)
        if self.settings:
            out["settings"] = {k: dict(v) for k, v in self.settings.items()}
        if self.directions != "joints":
            out["directions"] = self.directions
        return out


# --------------------------------------------------------------------------------------------
# built-in maps
# --------------------------------------------------------------------------------------------


def _sided(table: dict[str, str | list[str]]) -> dict[str, list[str]]:
    """Expand {"left_hip": "thigh{s}"} into both sides; '{S}' -> L/R, '{side}' -> Left/Right, '{s}' -> .L/.R."""
    out: dict[str, list[str]] = {}
    for joint, pattern in table.items():
        if joint.startswith("left_") and isinstance(pattern, str):
            rest = joint[len("left_"):]
            for side, S, s, word in (("left", "L", ".L", "Left"), ("right", "R", ".R", "Right")):
                out[f"{side}_{rest}"] = [pattern.format(S=S, s=s, side=word)]
        else:
            out[joint] = [pattern] if isinstance(pattern, str) else list(pattern)
    return {j: out[j] for j in JOINT_NAMES if j in out}


_RIGIFY_LIMBS = {
    "left_collar": "shoulder{s}", "left_shoulder": "upper_arm_fk{s}", "left_elbow": "forearm_fk{s}",
    "left_wrist": "hand_fk{s}", "left_hip": "thigh_fk{s}", "left_knee": "shin_fk{s}", "left_ankle": "foot_fk{s}",
    "left_foot": "toe_fk{s}",
}  # fmt: skip

BUILTIN_MAPS: dict[str, BoneMap] = {
    # The generated Rigify rig (Blender 4.x/5.x human metarig): FK controls. The torso control sits
    # at the spine pivot and carries the root motion; the lower FK chain hangs from it downwards.
    "rigify": BoneMap(
        name="rigify",
        bones=_sided({
            "pelvis": "spine_fk", "spine1": ["torso", "spine_fk.001"], "spine2": "spine_fk.002",
            "spine3": "spine_fk.003", "neck": "neck", "head": "head", **_RIGIFY_LIMBS,
        }),
        root="torso",
        directions="bones",  # FK controls lie along their segments; their heads are not all at joints
        refs={"torso": "spine_fk.001"},  # the torso control points backwards: align the segment instead
        settings={
            "torso": {"neck_follow": 0.0, "head_follow": 0.0},  # the neck and head follow the chest rigidly
            **{f"{limb}_parent.{S}": {"IK_FK": 1.0, "FK_limb_follow": 0.0}
               for limb in ("upper_arm", "thigh") for S in "LR"},
        },
    ),  # fmt: skip
    # Rigify deform bones, for a rig whose DEF- bones are free (e.g. an exported game rig).
    "rigify_deform": BoneMap(
        name="rigify_deform",
        bones=_sided({
            "pelvis": "DEF-spine", "spine1": "DEF-spine.001", "spine2": "DEF-spine.002", "spine3": "DEF-spine.003",
            "neck": "DEF-spine.004", "head": "DEF-spine.006", "left_collar": "DEF-shoulder{s}",
            "left_shoulder": "DEF-upper_arm{s}", "left_elbow": "DEF-forearm{s}", "left_wrist": "DEF-hand{s}",
            "left_hip": "DEF-thigh{s}", "left_knee": "DEF-shin{s}", "left_ankle": "DEF-foot{s}",
            "left_foot": "DEF-toe{s}",
        }),
    ),  # fmt: skip
    # The Rigify human metarig (before generation).
    "rigify_metarig": BoneMap(
        name="rigify_metarig",
        bones=_sided({
            "pelvis": "spine", "spine1": "spine.001", "spine2": "spine.002", "spine3": "spine.003",
            "neck": "spine.004", "head": "spine.006", "left_collar": "shoulder{s}", "left_shoulder": "upper_arm{s}",
            "left_elbow": "forearm{s}", "left_wrist": "hand{s}", "left_hip": "thigh{s}", "left_knee": "shin{s}",
            "left_ankle": "foot{s}", "left_foot": "toe{s}",
        }),
    ),  # fmt: skip
    "mixamo": BoneMap(
        name="mixamo",
        bones=_sided({
            "pelvis": "mixamorig:Hips", "spine1": "mixamorig:Spine", "spine2": "mixamorig:Spine1",
            "spine3": "mixamorig:Spine2", "neck": "mixamorig:Neck", "head": "mixamorig:Head",
            "left_collar": "mixamorig:{side}Shoulder", "left_shoulder": "mixamorig:{side}Arm",
            "left_elbow": "mixamorig:{side}ForeArm", "left_wrist": "mixamorig:{side}Hand",
            "left_hip": "mixamorig:{side}UpLeg", "left_knee": "mixamorig:{side}Leg",
            "left_ankle": "mixamorig:{side}Foot", "left_foot": "mixamorig:{side}ToeBase",
        }),
    ),  # fmt: skip
    # Our own capture rig and SMPL rigs named like it (smplx joint names).
    "smpl": BoneMap(name="smpl", bones={j: [j] for j in JOINT_NAMES}),
    # SMPL-X bodies: the first 22 joints share SMPL's names (SMPL's hand joints are fingers there).
    "smplx": BoneMap(name="smplx", bones={j: [j] for j in JOINT_NAMES[:22]}),
    # The SMPL Blender add-on / SMPL FBX names ("Pelvis", "L_Hip", ..., optionally "m_avg_"-prefixed).
    "smpl_fbx": BoneMap(
        name="smpl_fbx",
        bones={j: ["_".join([{"left": "L", "right": "R"}.get(w, w.capitalize()) for w in j.split("_")])]
               for j in JOINT_NAMES},
    ),  # fmt: skip
}

# The names a user picks ("rigify", "mixamo", "smpl") and the built-in maps each one tries, in order.
FAMILIES = {
    "rigify": ("rigify", "rigify_metarig", "rigify_deform"),
    "mixamo": ("mixamo",),
    "smpl": ("smpl", "smplx", "smpl_fbx"),
}
_PREFIXED = {"mixamo": ("mixamorig:", "Hips"), "smpl_fbx": ("", "Pelvis")}


def builtin_map(name: str) -> BoneMap:
    try:
        m = BUILTIN_MAPS[name]
    except KeyError:
        raise BoneMapError(f"no built-in bone map {name!r} (have: {', '.join(BUILTIN_MAPS)})") from None
    return m.renamed(lambda b: b)  # a copy


def _with_prefix(m: BoneMap, bone_names) -> BoneMap:
    """Mixamo rigs may say ``mixamorig1:``, SMPL FBX ``m_avg_``: take the prefix the rig's anchor bone has."""
    if m.name not in _PREFIXED:
        return m
    default, anchor = _PREFIXED[m.name]
    found = sorted(n[: -len(anchor)] for n in bone_names if n.endswith(anchor))
    prefix = next((p for p in found if p == default), found[0] if found else default)
    if prefix == default:
        return m
    return m.renamed(lambda b: prefix + b[len(default):] if b.startswith(default) else b)


# --------------------------------------------------------------------------------------------
# JSON files
# --------------------------------------------------------------------------------------------

_KEYS = {"format", "version", "name", "bones", "root", "refs", "settings", "directions"}


def parse_bone_map(data, source: str = "bone map") -> BoneMap:
    """Validate a map given as a dict (the JSON layout above); errors name the source and the key."""

    def bad(key, msg):
        return BoneMapError(f"{source}: {key}: {msg}")

    if not isinstance(data, dict):
        raise bad("file", "must be a JSON object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise bad(unknown[0], f"unknown key (allowed: {', '.join(sorted(_KEYS))})")
    if "format" in data and data["format"] != "tar-bone-map":
        raise bad("format", f"{data['format']!r} is not 'tar-bone-map'")
    if "version" in data and data["version"] != 1:
        raise bad("version", f"{data['version']!r} is not the supported version 1")
    bones_in = data.get("bones")
    if not isinstance(bones_in, dict) or not bones_in:
        raise bad("bones", "must be a non-empty object {smpl_joint: bone or [bones]}")
    bones: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for joint, target in bones_in.items():
        if joint not in JOINT_NAMES:
            raise bad(f"bones.{joint}", f"not an SMPL joint name (one of: {', '.join(JOINT_NAMES)})")
        targets = [target] if isinstance(target, str) else target
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
            raise bad(f"bones.{joint}", "must be a bone name or a non-empty list of bone names")
        for t in targets:
            if t in seen:
                raise bad(f"bones.{joint}", f"bone {t!r} is already driven by {seen[t]!r}")
            seen[t] = joint
        bones[joint] = list(targets)
    if "pelvis" not in bones:
        raise bad("bones.pelvis", "missing: the pelvis must be mapped (it carries the body's orientation)")
    root = data.get("root")
    if root is not None and (not isinstance(root, str) or not root):
        raise bad("root", "must be a bone name")
    refs = data.get("refs", {})
    if not isinstance(refs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in refs.items()):
        raise bad("refs", "must be an object {bone: bone}")
    for k in refs:
        if k not in seen:
            raise bad(f"refs.{k}", "is not a mapped bone")
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise bad("settings", "must be an object {bone: {property: number}}")
    for bone, props in settings.items():
        numbers = isinstance(props, dict) and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in props.items())
        if not numbers:
            raise bad(f"settings.{bone}", "must be an object {property: number}")
    name = data.get("name", source)
    if not isinstance(name, str):
        raise bad("name", "must be a string")
    directions = data.get("directions", "joints")
    if directions not in ("joints", "bones"):
        raise bad("directions", f"{directions!r} is neither 'joints' nor 'bones'")
    return BoneMap(name=name, bones={j: bones[j] for j in JOINT_NAMES if j in bones}, root=root, refs=dict(refs),
                   settings={b: {k: float(v) for k, v in p.items()} for b, p in settings.items()},
                   directions=directions)


def load_bone_map(path: str | Path) -> BoneMap:
    path = Path(path)
    if not path.is_file():
        raise BoneMapError(f"{path.name}: file: does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BoneMapError(f"{path.name}: file: not valid JSON ({exc})") from None
    m = parse_bone_map(data, path.name)
    if "name" not in data:
        m.name = path.stem
    return m


def resolve_bone_map(choice: str, bone_names, parents=None, rig_name: str = "target") -> tuple[BoneMap, list[str]]:
    """The map for a rig: ``choice`` is a family ("rigify", "mixamo", "smpl"), a built-in map name,
    "auto", or a path to a JSON file. Returns (map, notes). Raises BoneMapError when the rig lacks
    bones the chosen map names (the message lists all of them) and nothing fits better."""
    names = list(bone_names)
    if choice == "auto":
        if parents is None:
            raise BoneMapError("auto-map needs the rig's bone parents")
        m, unmapped = auto_map(names, parents)
        notes = [f"auto-map could not map: {', '.join(unmapped)}"] if unmapped else []
        return m, notes
    if choice in FAMILIES or choice in BUILTIN_MAPS:
        candidates = [_with_prefix(builtin_map(n), names) for n in FAMILIES.get(choice, (choice,))]
        for m in candidates:
            if not m.missing_in(names):
                return m, []
        # The variant the rig comes closest to (most of its bones present; the family's first on a tie).
        best = max(candidates, key=lambda m: len(m.named_bones()) - len(m.missing_in(names)))
        try:
            best.check_rig(names, rig_name)
        except BoneMapError as exc:
            others = [m.name for m in candidates if m is not best]
            tail = f" (no other {choice} variant fits: {', '.join(others)})" if others else ""
            raise BoneMapError(str(exc) + tail, exc.missing) from None
    if str(choice).lower().endswith(".json") or Path(choice).is_file():
        m = load_bone_map(choice)
        m.check_rig(names, rig_name)
        return m, []
    raise BoneMapError(f"unknown bone map {choice!r}: use rigify, mixamo, smpl, auto or a .json file")


# --------------------------------------------------------------------------------------------
# auto-map by common names
# --------------------------------------------------------------------------------------------

_SKIP = re.compile(r"(^|[^a-z])(ik|mch|tweak|twist|pole|target|roll|end|nub|ctrl_ik|vis|wgt|helper|socket|"
                   r"jiggle|breast|pelvis_[lr])([^a-z]|$)|(^|[_.:])(mch|org|vis|wgt)[-_.]")
# (part, regex) tried in order; the first that matches classifies a bone. Names are normalised first.
_PARTS = [
    ("toe", r"toe|ball"),
    ("foot", r"foot|ankle"),
    ("hand", r"hand|wrist"),
    ("forearm", r"fore ?arm|lower ?arm|lowarm|elbow|arm ?lower"),
    ("upper_arm", r"upper ?arm|up ?arm|uparm|arm ?upper|^arm$|( |^)arm( |$)"),
    ("collar", r"clavicle|collar|shoulder"),
    ("thigh", r"thigh|up ?leg|upper ?leg|leg ?upper|( |^)hip( |$)"),
    ("shin", r"shin|calf|lower ?leg|low ?leg|knee|leg ?lower|^leg$|( |^)leg( |$)"),
    ("head", r"head"),
    ("neck", r"neck"),
    ("pelvis", r"hips|pelvis"),
    ("spine", r"spine|chest|torso|back|abdomen"),
]
_SIDED = {"toe": "foot", "foot": "ankle", "hand": "wrist", "forearm": "elbow", "upper_arm": "shoulder",
          "collar": "collar", "shin": "knee", "thigh": "hip"}  # part -> SMPL joint stem


def _normalise(name: str) -> tuple[str, str | None]:
    """(lower-case words, side 'left'/'right'/None) of a bone name."""
    n = re.sub(r"^[a-z0-9]+:", "", name, flags=re.I)  # mixamorig: and other namespaces
    n = re.sub(r"^(def|org|bip\d*|cc_base|j_bip|m_avg|f_avg)[-_ ]", "", n, flags=re.I)
    n = re.sub(r"([a-z])([A-Z])", r"\1 \2", n)  # camelCase
    low = n.lower()
    side = None
    patterns = [
        (r"(^|[ ._\-])(left)([ ._\-]|$)|^left", "left"), (r"(^|[ ._\-])(right)([ ._\-]|$)|^right", "right"),
        (r"[._\- ]l$|^l[._\- ]|[._\- ]l[._\- ]", "left"), (r"[._\- ]r$|^r[._\- ]|[._\- ]r[._\- ]", "right"),
    ]
    for pat, s in patterns:
        if re.search(pat, low):
            side = s
            break
    low = re.sub(r"(^|[ ._\-])(left|right|l|r)(?=[ ._\-]|$)", " ", low)
    low = re.sub(r"^(left|right)", "", low)
    low = re.sub(r"[._\-]+", " ", low).strip()
    low = re.sub(r"\s+", " ", low)
    return low, side


def _depths(parents: list[int], n: int) -> list[int]:
    """Each of the n bones' distance from its root (bounded, should the parents loop)."""
    depth = []
    for i in range(n):
        d, p = 0, parents[i]
        while p >= 0 and d <= n:
            d, p = d + 1, parents[p]
        depth.append(d)
    return depth


def _classify(name: str) -> str | None:
    """The SMPL joint (or "spine") a bone's name says it is; None for helpers and other names."""
    low, side = _normalise(name)
    if _SKIP.search(name.lower()) or _SKIP.search(low) or re.search(r"\d+ ?(end|nub)$|_end$", name.lower()):
        return None
    for part, pat in _PARTS:
        if re.search(pat, low):
            if (part in _SIDED) != (side is not None):  # sided parts need a side, central ones none
                return None
            return f"{side}_{_SIDED[part]}" if side else part
    return None


def _candidates(names: list[str]) -> dict[str, list[int]]:
    """Joint (or "spine") -> the bones whose names say they are it."""
    cands: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        joint = _classify(name)
        if joint is not None:
            cands.setdefault(joint, []).append(i)
    return cands


def _spine_chain(spine: list[int], parents: list[int]) -> list[int]:
    """Keep one chain: each next bone a descendant of the previous (helper spines branch off)."""
    chain = [spine[0]]
    for i in spine[1:]:
        p = parents[i]
        while p >= 0 and p != chain[-1]:
            p = parents[p]
        if p == chain[-1]:
            chain.append(i)
    return chain


def _add_spine(bones: dict[str, list[str]], spine: list[int], names: list[str], parents: list[int],
               depth: list[int]) -> None:
    """Fill spine1..3 from the spine bones, from the pelvis upwards (and the pelvis from the lowest
    where no hips bone was found)."""
    spine = sorted(spine, key=lambda i: (depth[i], i))
    if "pelvis" not in bones and spine:  # rigs whose lowest spine bone is the hips
        bones["pelvis"] = [names[spine.pop(0)]]
    pelvis = bones.get("pelvis", [None])[0]
    spine = [i for i in spine if names[i] != pelvis]
    if not spine:
        return
    chain = _spine_chain(spine, parents)
    if len(chain) > 3:  # more spine bones than SMPL has: spread over the chain, the top one is the chest
        chain = [chain[round(k * (len(chain) - 1) / 2)] for k in range(3)]
    for slot, i in zip(("spine1", "spine2", "spine3"), chain, strict=False):
        bones[slot] = [names[i]]


def _one_bone_per_joint(bones: dict[str, list[str]]) -> dict[str, list[str]]:
    """One bone drives one joint: the first in joint order keeps it; in joint order."""
    used: set[str] = set()
    out: dict[str, list[str]] = {}
    for j in JOINT_NAMES:
        if j in bones and bones[j][0] not in used:
            used.add(bones[j][0])
            out[j] = bones[j]
    return out


def auto_map(bone_names, parents) -> tuple[BoneMap, list[str]]:
    """Match SMPL joints to bones by common names (hips/pelvis, spine/chest, neck, head, clavicle,
    upper arm, forearm, hand, thigh/up leg, shin/calf/leg, foot, toe; sides by L/R/Left/Right).

    parents: per bone the parent's index (-1 for a root). Returns (map, SMPL joints left unmapped).
    Among several candidates the one nearest the root wins (controls over their helper chains);
    spine bones fill spine1..3 from the pelvis upwards.
    """
    names = list(bone_names)
    parents = [int(p) for p in parents]
    depth = _depths(parents, len(names))
    cands = _candidates(names)
    bones = {j: [names[min(cands[j], key=lambda i: (depth[i], len(names[i]), i))]]
             for j in JOINT_NAMES if j in cands}
    _add_spine(bones, cands.get("spine", []), names, parents, depth)
    if "pelvis" not in bones:
        raise BoneMapError("auto-map found no hips/pelvis bone; write a bone map file for this rig",
                           missing=[j for j in JOINT_NAMES if j not in bones])
    bones = _one_bone_per_joint(bones)
    return BoneMap(name="auto", bones=bones), [j for j in JOINT_NAMES if j not in bones]
