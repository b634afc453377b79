"""Choosing people after tracking: ``--person X,Y`` / ``--person ID``, ``--max-people N``, and the
``--list-people`` preview (``people.png``: the first frame with numbered boxes; ``people.json``: ids, frame
ranges and first boxes).

``--person X,Y`` names the person whose box, on the first frame where they are visible, holds the point
(the smallest such box when several do); ``--person ID`` an id from the preview (ids are the same from one
run to the next on the same clip). ``--max-people N`` keeps the N largest tracks (median box area).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tar_core.errors import NoPersonError, UsageError
from tar_core.util.atomic import atomic_path

__all__ = ["parse_person", "select_people", "write_preview"]


def parse_person(text: str | None):
    """``"X,Y"`` -> (x, y) floats; ``"ID"`` -> int; None/"" -> None (everyone)."""
    if text is None or str(text).strip() in ("", "all"):
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) == 1:
            value = int(parts[0])
            if value < 0:
                raise ValueError
            return value
        if len(parts) == 2:
            return float(parts[0]), float(parts[1])
    except ValueError:
        pass
    raise UsageError(f"--person {text!r}: give a point X,Y in pixels of the first frame, or a person id")


def _first_box(track) -> np.ndarray:
    return np.asarray(track.boxes[0], dtype=np.float64)


def pick_at(tracks: dict, x: float, y: float) -> int:
    """Id of the person whose first box holds (x, y); NoPersonError naming the nearest one otherwise."""
    hits = []
    for tid, t in tracks.items():
        b = _first_box(t)
        if b[0] <= x <= b[2] and b[1] <= y <= b[3]:
            hits.append(((b[2] - b[0]) * (b[3] - b[1]), tid))
    if hits:
        return min(hits)[1]
    if not tracks:
        raise NoPersonError(f"no person at ({x:g}, {y:g}): nobody was found in the clip")

    def dist(tid):
        b = _first_box(tracks[tid])
        return float(np.hypot(max(b[0] - x, 0, x - b[2]), max(b[1] - y, 0, y - b[3])))

    near = min(tracks, key=dist)
    b = _first_box(tracks[near])
    cx, cy = 0.5 * (b[0] + b[2]), 0.5 * (b[1] + b[3])
    raise NoPersonError(
        f"no person at ({x:g}, {y:g}); the nearest is person {near} at ({cx:.0f}, {cy:.0f}) "
        f"(box {b[0]:.0f},{b[1]:.0f}-{b[2]:.0f},{b[3]:.0f} on frame {tracks[near].frame_ids[0]}, "
        f"{dist(near):.0f} px away)"
    )


def select_people(tracks: dict, person=None, max_people: int = 0) -> dict:
    """The tracks the user asked for: one person (a point or an id), or the ``max_people`` largest, or all."""
    if isinstance(person, tuple):
        tid = pick_at(tracks, *person)
        return {tid: tracks[tid]}
    if isinstance(person, int):
        if person not in tracks:
            raise NoPersonError(f"no person with id {person}; the clip has {sorted(tracks)} (see --list-people)")
        return {person: tracks[person]}
    if max_people and len(tracks) > max_people:

        def area(t):
            b = np.asarray(t.boxes)
            return float(np.median((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))

        keep = sorted(tracks, key=lambda tid: -area(tracks[tid]))[:max_people]
        return {tid: tracks[tid] for tid in sorted(keep)}
    return tracks


def people_list(tracks: dict) -> list[dict]:
    return [{"id": int(tid), "first_frame": int(t.frame_ids[0]), "last_frame": int(t.frame_ids[-1]),
             "frames": len(t.frame_ids), "first_box": [round(float(v), 1) for v in t.boxes[0]]}
            for tid, t in sorted(tracks.items())]  # fmt: skip


def write_preview(out_dir: Path, tracks: dict, first_image: np.ndarray | None) -> dict:
    """``people.json`` and ``people.png`` (first frame, every person's first box numbered; a person who
    appears later is drawn dashed-looking in grey with the frame they appear on)."""
    import cv2

    people = people_list(tracks)
    info = {"people": people, "preview": "people.png" if first_image is not None else None}
    if first_image is not None:
        img = cv2.cvtColor(first_image, cv2.COLOR_RGB2BGR)
        scale = max(1, round(max(img.shape[:2]) / 640))
        colours = [(60, 200, 60), (40, 120, 255), (255, 120, 40), (200, 60, 200), (40, 220, 220), (220, 220, 40)]
        for k, p in enumerate(people):
            x0, y0, x1, y1 = (int(round(v)) for v in p["first_box"])
            later = p["first_frame"] > 0
            colour = (160, 160, 160) if later else colours[k % len(colours)]
            cv2.rectangle(img, (x0, y0), (x1, y1), colour, 1 if later else 2 * scale)
            label = f"{p['id']}" + (f" (from frame {p['first_frame']})" if later else "")
            cv2.putText(img, label, (x0 + 3, max(y0 - 6, 14 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                        colour, 2 * scale, cv2.LINE_AA)
        with atomic_path(out_dir / "people.png", suffix=".png") as tmp:
            if not cv2.imwrite(str(tmp), img):
                raise OSError(f"could not write {out_dir / 'people.png'}")
    with atomic_path(out_dir / "people.json", suffix=".json") as tmp, open(tmp, "w") as fh:
        json.dump(info, fh, indent=2)
    return info
