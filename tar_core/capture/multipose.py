"""Every person in view, each with their own landmarks: MediaPipe's pose models (in the wheel) on regions.

Per frame:

- **Region passes.** Every open track gets a landmark pass by a single-person MediaPipe ``Pose`` of its own
  in tracking mode. While the person is alone in view it runs on the whole frame, exactly MediaPipe's own
  single-person path. With others in view it runs on a square crop around the box the tracker predicts
  (``CROP_SCALE`` x the box's longer side) that stays put while the person stays inside it: the
  landmarker's own tracking and smoothing work in the frame of the image they are given, so that frame is
  kept still (a move restarts them). Small people fill their crop. Other tracks' predicted boxes are
  blanked in the crop (outside the track's own box), so where people come close the landmarker sees no one
  else to slide onto. Two people never share landmarks: each pass gives one person, and when two passes
  land on the same person (IoU above ``DUPLICATE_IOU``) only the one of the track seen most recently is
  kept (then the one nearest its prediction); the other landmarker is reset. A kept pass names its track
  (``Detection.source``), and the tracker gives it to that track first.
- **Discovery.** New people are looked for by MediaPipe's pose *detector* alone (its ``PoseDetectionCpu``
  graph: boxes, no landmarks) on the whole frame: on every frame while nobody is tracked, every ``discover_s``
  seconds, and every ``calm_s`` seconds once each tracked person has been found on every frame for ``calm_s``
  with nobody new. While someone is tracked, a due discovery is skipped when nothing changed outside the
  tracked people since the last one ran (``Stillness``: a 128-pixel-wide copy of the frame compared), for up
  to ``idle_s`` seconds (``alone_idle_s`` while one person alone in view is found confidently on the whole
  frame: anyone else coming into view changes pixels outside them). The detector sees a 224x224 copy of the
  frame and misses people under about a quarter of the frame's longer side, so frames of ``TILE_MIN_SIDE``
  pixels or more are also searched in overlapping tiles: all of them while nobody is tracked; else the tile
  centred nearest to where the frame changed, or in turn one per discovery (one every ``TILE_EVERY``
  discoveries once calm); never a tile three quarters covered by a person the whole-frame pass found. A
  detection whose hips lie near the centre of a person found on this frame by the region passes costs nothing
  more; any other gets a landmark pass on its own region, by a fresh landmarker that then stays with the new
  track. While nobody is tracked, a landmarker that follows nobody first makes a pass on the whole frame, as a
  single ``Pose`` would: it runs the same detector graph on the frame inside, and its detections stand for the
  detector's there (the tiles still go to the detector). When it found the one person in view, large enough
  for the whole frame (``WHOLE_MIN``), that pass is the new person's: the track's landmarker goes on with the
  whole frame, exactly MediaPipe's single-person path from the first frame.

With one person in view before a still background the cost per frame is one landmark pass, as with a single
``Pose`` on the whole frame (a person whose crop would hold the whole frame gets the frame itself), plus a
detector run per ``alone_idle_s`` (the detector graph is created at its first run). ``LandmarksInBoxes`` runs the
same region passes inside the user's ``--boxes``, one landmarker per user id. (``pose_bundle`` builds the
Tasks-API bundle from the same models; the capture path no longer needs it: the single-person graph is
faster per pass.)
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from tar_core.capture.detection import Landmarks, landmarks_box
from tar_core.capture.tracking import Detection, box_iou, box_iou_one

__all__ = ["LandmarksInBoxes", "MultiPoseDetector", "quiet_native_stderr"]

CROP_SCALE = 1.7  # crop side / the person's longer box side
DETECTION_SCALE = 1.25  # crop side / the side of the pose detector's body square (MediaPipe's own ROI)
CROP_STEP = 32  # crop sides are multiples of this many pixels
MAX_CROP = 640  # wider crops come from the image shrunk by a whole factor
DUPLICATE_IOU = 0.5
NEW_PERSON_IOU = 0.7  # a new person's pass overlapping someone found this much landed on them (the real duo's two
# dancers, side by side with arms across each other, overlap by 0.49)
SIZE_JUMP = 1.8  # a pass whose box diagonal exceeds this x the track's recent median is refused
TILE_MIN_SIDE = 640
TILE_EVERY = 2
MAX_REGION_PASSES = 12
WHOLE_MIN = 0.125  # the whole frame only for a person whose box half-side is this x the frame's longer side
# (a box of a quarter of it: MediaPipe's own whole-frame detector misses smaller people)
CONFIDENT = 0.6  # the mean landmark visibility of a person alone in view for discovery to rest longer
MIN_OWN_IOU = 0.05  # a pass whose person barely overlaps the track's predicted box found someone else
CROP_MARGIN = 0.06  # a crop is kept while the person's box stays this fraction of its side inside it
CROP_RESIZE = (0.8, 1.25)  # ... and while the side it would have now is within these factors of its own
_NONE = object()
_POSE_GRAPH = "mediapipe/modules/pose_landmark/pose_landmark_cpu.binarypb"  # mp.solutions.pose.Pose's graph
_POSE_THRESHOLDS = (  # its min_detection_confidence, min_tracking_confidence
    "posedetectioncpu__TensorsToDetectionsCalculator.min_score_thresh",
    "poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation__ThresholdingCalculator.threshold",
)
_DETECTOR_GRAPH = """
input_stream: "image"
output_stream: "detections"
node { calculator: "PoseDetectionCpu" input_stream: "IMAGE:image" output_stream: "DETECTIONS:detections" }
"""


@contextlib.contextmanager
def quiet_native_stderr():
    """Send file descriptor 2 to /dev/null for the block: MediaPipe's C++ code (absl logging, TFLite) writes
    there directly, past ``sys.stderr``, and ignores ``GLOG_minloglevel``; some lines come at the first
    frame with a person, so every call into MediaPipe runs inside this."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _import_mediapipe():
    os.environ.setdefault("GLOG_minloglevel", "2")  # read when the native library loads: set it before
    import mediapipe

    return mediapipe


def inference_threads() -> int:
    """XNNPACK threads per MediaPipe model: the cores this process may use, at most 4. MediaPipe's own default is
    one; two run the landmark model 1.6x as fast on 2 cores (37 -> 59 passes/s on a 640x480 clip, the same
    landmarks to the last bit), and nothing else runs while the landmarks are read."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _threaded(graph):
    """``graph`` (a path in the wheel, or a ``CalculatorGraphConfig``) with its subgraphs expanded and every
    inference calculator on ``inference_threads()`` XNNPACK threads."""
    from mediapipe.calculators.tensor import inference_calculator_pb2
    from mediapipe.framework import calculator_pb2
    from mediapipe.python._framework_bindings import resource_util, validated_graph_config

    root = os.path.dirname(os.path.dirname(_import_mediapipe().__file__))  # site-packages: paths in graphs start here
    resource_util.set_resource_dir(root)
    validated = validated_graph_config.ValidatedGraphConfig()
    if isinstance(graph, str):
        validated.initialize(binary_graph_path=os.path.join(root, graph))
    else:
        validated.initialize(graph_config=graph)
    config = calculator_pb2.CalculatorGraphConfig()
    config.ParseFromString(validated.binary_config)
    for node in config.node:
        if node.calculator.startswith("InferenceCalculator"):
            options = node.options.Extensions[inference_calculator_pb2.InferenceCalculatorOptions.ext]
            options.delegate.xnnpack.num_threads = inference_threads()
    return config


def _pose_landmarker():
    """MediaPipe's single-person pose graph as ``mp.solutions.pose.Pose`` builds it in tracking mode
    (``model_complexity=1``, the model in the wheel; confidences 0.5), created with fd 2 silenced, its models on
    ``inference_threads()`` threads. Besides the landmarks it gives ``pose_detections``: every person its own pose
    detector found, on the frames where it ran that detector (those where it had nobody to follow; on the whole
    image, exactly what the discovery detector finds there). Its models load (and log) at its first ``process``,
    which runs silenced too."""
    _import_mediapipe()
    from mediapipe.python import solution_base

    with quiet_native_stderr():
        return solution_base.SolutionBase(
            graph_config=_threaded(_POSE_GRAPH),
            side_inputs={"model_complexity": 1, "smooth_landmarks": True, "enable_segmentation": False,
                         "smooth_segmentation": True, "use_prev_landmarks": True},
            calculator_params={_POSE_THRESHOLDS[0]: 0.5, _POSE_THRESHOLDS[1]: 0.5},
            outputs=["pose_landmarks", "pose_world_landmarks", "pose_detections"])


def _pose_detector():
    """MediaPipe's pose detector alone (the ``PoseDetectionCpu`` graph in the wheel): boxes, no landmarks; its model
    on ``inference_threads()`` threads."""
    _import_mediapipe()
    from google.protobuf import text_format
    from mediapipe.framework import calculator_pb2
    from mediapipe.python import solution_base

    config = text_format.Parse(_DETECTOR_GRAPH, calculator_pb2.CalculatorGraphConfig())
    with quiet_native_stderr():  # its model loads at the first ``process`` (silenced as every call is)
        return solution_base.SolutionBase(graph_config=_threaded(config), outputs=["detections"])


def _body_squares(detections, x0: float, y0: float, sx: float, sy: float) -> list[Detection]:
    """The pose detector's people (its detections, or None) on a region at (x0, y0) of size (sx, sy) pixels:
    squares centred on the hips reaching the body's enclosing circle (keypoint 0: mid-hip; keypoint 1: its
    radius)."""
    out = []
    for d in detections or []:
        kp = d.location_data.relative_keypoints
        hip = np.array([x0 + kp[0].x * sx, y0 + kp[0].y * sy])
        r = float(np.hypot((kp[1].x - kp[0].x) * sx, (kp[1].y - kp[0].y) * sy))
        if r > 2.0:
            out.append(Detection(box=np.concatenate([hip - r, hip + r]), score=float(d.score[0])))
    return out


def _to_landmarks(pose, world, x0: float, y0: float, sx: float, sy: float) -> Landmarks:
    """One pose (landmarks normalised to an image region at (x0, y0) of size (sx, sy) pixels) -> Landmarks."""
    a = np.array([(p.x, p.y, p.visibility if p.visibility is not None else 0.0) for p in pose], dtype=np.float64)
    xy = a[:, :2] * (sx, sy) + (x0, y0)
    w = np.array([(p.x, p.y, p.z) for p in world], dtype=np.float64)
    return Landmarks(image_xy=xy, visibility=a[:, 2].clip(0.0, 1.0), world=w)


def _detection(res, x0: float, y0: float, sx: float, sy: float, width: int, height: int) -> Detection | None:
    """A landmarker's result on an image region at (x0, y0) of size (sx, sy) pixels of a ``width`` x ``height``
    image -> its person (box, mean visibility, Landmarks), or None."""
    if res.pose_landmarks is None:
        return None
    lm = _to_landmarks(res.pose_landmarks.landmark, res.pose_world_landmarks.landmark, x0, y0, sx, sy)
    box = landmarks_box(lm, width, height)
    return None if box is None else Detection(box=box, score=float(np.mean(lm.visibility)), payload=lm)


def crop_square(image: np.ndarray, box: np.ndarray, scale: float = CROP_SCALE, shrunk=None):
    """A square crop around ``box`` (``scale`` x its longer side, in ``CROP_STEP`` steps so it changes size
    seldom), zero padded outside the image. Squares wider than ``MAX_CROP`` are cut from the image shrunk
    by a whole factor k (exact k x k pixel means, so coordinates just scale by k): one resampling only,
    as a second one before the landmark model's own costs accuracy. ``shrunk(k)`` may supply (and cache)
    the shrunk image. A square that holds the whole image gives the image itself, untouched (no copy, no
    resampling: what a single ``Pose`` on the whole frame sees). Returns (crop, x0, y0, width, height): the
    crop and the region of the image it shows, in the image's pixels; or None when too little of the square
    lies inside the image."""
    import cv2

    s = CROP_STEP * max(2, int(round(scale * max(box[2] - box[0], box[3] - box[1]) / CROP_STEP)))
    full = 0.5 * (box[:2] + box[2:]) - s / 2
    if full[0] <= 0 and full[1] <= 0 and full[0] + s >= image.shape[1] and full[1] + s >= image.shape[0]:
        return image, 0, 0, image.shape[1], image.shape[0]
    k = max(1, int(np.ceil(s / MAX_CROP)))
    if k > 1:
        image = shrunk(k) if shrunk else cv2.resize(image, None, fx=1 / k, fy=1 / k, interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    c = 0.5 * (box[:2] + box[2:]) / k
    sk = int(np.ceil(s / k))
    x0, y0 = int(round(c[0] - sk / 2)), int(round(c[1] - sk / 2))
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + sk, w), min(y0 + sk, h)
    if ix1 - ix0 < 0.3 * sk or iy1 - iy0 < 0.3 * sk:
        return None
    crop = image[iy0:iy1, ix0:ix1]
    if (ix0, iy0, ix1, iy1) != (x0, y0, x0 + sk, y0 + sk):
        crop = cv2.copyMakeBorder(crop, iy0 - y0, y0 + sk - iy1, ix0 - x0, x0 + sk - ix1, cv2.BORDER_CONSTANT, value=0)
    return np.ascontiguousarray(crop), k * x0, k * y0, k * sk, k * sk


def hide_others(crop: np.ndarray, x0: float, y0: float, sx: float, sy: float, own: np.ndarray,
                others: list) -> np.ndarray:
    """The crop (showing the image region at (x0, y0) of sx x sy image pixels) with every box of ``others``
    filled with the crop's mean colour, except where it overlaps ``own``: the landmarker, which follows whoever
    it sees best, sees no one but the person it is for where people come close (its own box is untouched)."""
    h, w = crop.shape[:2]
    k = np.array([w / sx, h / sy, w / sx, h / sy])

    def pixels(b):
        return np.clip(np.round((np.asarray(b) - [x0, y0, x0, y0]) * k), 0, [w, h, w, h]).astype(int)

    out = crop.copy()
    fill = crop.reshape(-1, crop.shape[2]).mean(0).astype(crop.dtype)
    for b in others:
        bx0, by0, bx1, by1 = pixels(b)
        out[by0:by1, bx0:bx1] = fill
    ox0, oy0, ox1, oy1 = pixels(own)
    out[oy0:oy1, ox0:ox1] = crop[oy0:oy1, ox0:ox1]
    return out


class _RegionPasses:
    """Landmarkers in tracking mode (one person each: MediaPipe's ``Pose``, the single-person graph) keyed by
    a person's id, reused from a pool once released.

    Each landmarker's own tracking and smoothing work in the frame of the image it is given, so that frame
    is kept still: the whole image while the person is alone in view (exactly MediaPipe's single-person
    path), else a crop that stays put while the person's box stays well inside it and about the same size
    (``CROP_MARGIN``, ``CROP_RESIZE``). Measured on renders: a crop re-centred on every frame put the
    landmarks 0.3-1.6 px further from the truth than the whole image; a still crop, 0.3-0.9 px."""

    def __init__(self):
        self._by_key: dict[int, object] = {}
        self._pool: list = []
        self._frame: dict[int, tuple | None] = {}  # key -> its crop (centre, side), None: the whole image
        self._blank = np.zeros((32, 32, 3), np.uint8)
        self._small: tuple = (None, 0, None)  # (image, k, the image shrunk by k): one per frame and factor

    def _shrunk(self, image: np.ndarray, k: int) -> np.ndarray:
        import cv2

        if self._small[0] is not image or self._small[1] != k:
            self._small = (image, k, cv2.resize(image, None, fx=1 / k, fy=1 / k, interpolation=cv2.INTER_AREA))
        return self._small[2]

    def _get(self, key: int):
        pose = self._by_key.get(key)
        if pose is None:
            pose = self._pool.pop() if self._pool else _pose_landmarker()
            self._by_key[key] = pose
        return pose

    def _square(self, key: int, box: np.ndarray, scale: float) -> np.ndarray:
        """The square to crop for ``key``: its previous one while ``box`` fits it, else one around ``box``."""
        want = scale * max(box[2] - box[0], box[3] - box[1])
        prev = self._frame.get(key)
        if prev is not None:
            c, side = prev
            lo, hi = c - (0.5 - CROP_MARGIN) * side, c + (0.5 - CROP_MARGIN) * side
            if CROP_RESIZE[0] < want / side < CROP_RESIZE[1] and (box[:2] >= lo).all() and (box[2:] <= hi).all():
                return np.concatenate([c - side / 2, c + side / 2])
        if key in self._frame:  # a new frame of reference: the landmarker's own tracking must start afresh
            self.reset(key, 0.0)
        c = 0.5 * (box[:2] + box[2:])
        self._frame[key] = (c, want)
        return np.concatenate([c - want / 2, c + want / 2])

    def _image(self, key: int, image: np.ndarray):
        """The whole image for ``key`` (reset first when it had a crop)."""
        if self._frame.get(key, 0) is not None:
            self.reset(key, 0.0)
        self._frame[key] = None
        h, w = image.shape[:2]
        return image, 0, 0, w, h

    def run(self, key: int, image: np.ndarray, box: np.ndarray, time_s: float, scale: float = CROP_SCALE,
            hide: list | None = None, whole: bool = False) -> Detection | None:
        """The landmark pass for ``key`` on the whole image or on a crop around ``box``; None when it finds
        nobody there. ``hide``: other people's boxes, blanked in a crop outside ``box`` (see ``hide_others``)."""
        h, w = image.shape[:2]
        if whole:
            crop, x0, y0, sx, sy = self._image(key, image)
        else:
            cut = crop_square(image, self._square(key, box, scale), 1.0, lambda k: self._shrunk(image, k))
            if cut is None:
                return None
            crop, x0, y0, sx, sy = cut
            if hide:
                crop = hide_others(crop, x0, y0, sx, sy, box, hide)
        return _detection(self._process(key, crop), x0, y0, sx, sy, w, h)

    def look(self, key: int, image: np.ndarray, time_s: float) -> tuple[Detection | None, list[Detection], bool]:
        """A pass for ``key`` on the whole image by a landmarker that follows nobody (fresh, or from the pool):
        its person (or None), every person its own detector found on the image (``_body_squares``), and
        whether it follows someone now (else it has forgotten whom it followed already: no ``reset`` needed)."""
        crop, x0, y0, sx, sy = self._image(key, image)
        res = self._process(key, crop)
        return (_detection(res, x0, y0, sx, sy, sx, sy), _body_squares(res.pose_detections, x0, y0, sx, sy),
                res.pose_landmarks is not None)

    def _process(self, key: int, crop: np.ndarray):
        pose = self._get(key)
        with quiet_native_stderr():
            return pose.process(crop)

    def reset(self, key: int, time_s: float) -> None:
        """Make ``key``'s landmarker forget whom it followed (a frame with nobody in it)."""
        self._frame.pop(key, None)
        pose = self._by_key.get(key)
        if pose is not None:
            with quiet_native_stderr():
                pose.process(self._blank)

    def move(self, src: int, dst: int) -> None:
        """The landmarker of ``src`` now follows ``dst`` (the two swap if both have one)."""
        for table in (self._by_key, self._frame):
            a, b = table.pop(src, _NONE), table.pop(dst, _NONE)
            if a is not _NONE:
                table[dst] = a
            if b is not _NONE:
                table[src] = b

    def release(self, key: int, time_s: float, forget: bool = True) -> None:
        """``key``'s landmarker back to the pool, reset first (``forget=False``: it follows nobody already)."""
        if forget:
            self.reset(key, time_s)
        self._frame.pop(key, None)
        pose = self._by_key.pop(key, None)
        if pose is not None:
            self._pool.append(pose)

    def whole(self, key: int) -> bool:
        """Whether ``key``'s landmarker works on the whole image."""
        return key in self._frame and self._frame[key] is None

    def keys(self) -> list[int]:
        return list(self._by_key)

    def close(self) -> None:
        for pose in [*self._by_key.values(), *self._pool]:
            pose.close()
        self._by_key.clear()
        self._pool.clear()


def tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles (x0, y0, x1, y1), each about half the frame's longer side, covering the frame."""
    side = int(np.ceil(max(width, height) / 2))
    out = []
    xs = _starts(width, side)
    ys = _starts(height, side)
    for y0 in ys:
        for x0 in xs:
            out.append((x0, y0, min(x0 + side, width), min(y0 + side, height)))
    return out


def _starts(length: int, side: int) -> list[int]:
    if side >= length:
        return [0]
    n = int(np.ceil((length - side) / (0.75 * side))) + 1  # a quarter of overlap at least
    return [int(round(v)) for v in np.linspace(0, length - side, n)]


def _covers(box: np.ndarray, region) -> bool:
    """Whether ``box`` covers at least three quarters of the region (x0, y0, x1, y1): no room left there for
    someone the detector could miss on the whole frame and find in the tile."""
    x0, y0, x1, y1 = region
    w = max(0.0, min(box[2], x1) - max(box[0], x0))
    h = max(0.0, min(box[3], y1) - max(box[1], y0))
    return w * h >= 0.75 * (x1 - x0) * (y1 - y0)


def _same_person(square: np.ndarray, box: np.ndarray) -> bool:
    """Whether a detector square (centred on the hips) belongs to the person found in ``box``: the hips lie
    near the box's centre (a person's box centre is about at the hips)."""
    d = np.abs(0.5 * (square[:2] + square[2:]) - 0.5 * (box[:2] + box[2:]))
    h = box[3] - box[1]
    return bool(d[0] < 0.15 * h and d[1] < 0.25 * h)


def _found_already(box: np.ndarray, others: list) -> bool:
    """Whether a new person's pass (its landmarks' ``box``) landed on someone found on this frame already: the new
    box is centred on another's (its hips there, ``_same_person``) or nearly covers the same region
    (``NEW_PERSON_IOU``). Two people side by side, arms across each other, overlap a good deal but are apart at
    the hips: with a plain IoU above 0.3 the second dancer of the real duo, in view from the first frame, was
    refused until frame 24."""
    if not others:
        return False
    return bool(box_iou(box, np.stack(others)).max() > NEW_PERSON_IOU or any(_same_person(box, o) for o in others))


class Stillness:
    """Whether anything changed in a frame outside the people tracked in it since the frame ``remember`` was
    given: both frames shrunk to ``WIDTH`` pixels across (sampled, then blurred), compared outside every tracked
    person's box (then and now; not grown: someone close beside them must count); changed when more than
    ``SHARE`` of the pixels left moved
    by more than ``LEVEL`` grey levels. A person walking in, or stepping out from behind someone, changes
    pixels there; a still background, and the tracked people's own motion, do not."""

    WIDTH = 128
    LEVEL = 16
    SHARE = 0.002

    def __init__(self):
        self._ref: np.ndarray | None = None
        self._ref_boxes: list = []

    def _small(self, image: np.ndarray) -> np.ndarray:
        import cv2

        h, w = image.shape[:2]
        size = (self.WIDTH, max(1, round(self.WIDTH * h / w)))
        step = max(1, w // self.WIDTH)  # every step-th pixel, then a blur: cheap on any frame (area means are not)
        small = cv2.GaussianBlur(cv2.resize(image[::step, ::step], size, interpolation=cv2.INTER_LINEAR), (3, 3), 0)
        c = small.astype(np.float64)
        return (c[..., 0] + c[..., 1] + c[..., 2]) / 3  # the channels' mean: a tenth of the cost of mean(axis=2)

    def remember(self, image: np.ndarray, boxes: list) -> None:
        self._ref, self._ref_boxes = self._small(image), list(boxes)

    def moved(self, image: np.ndarray, boxes: list) -> np.ndarray | None:
        """Where (x, y image pixels: the centre of the moved pixels) the frame changed outside the people in
        ``boxes`` and in the remembered boxes; None where it did not. Without a remembered frame: the centre."""
        h, w = image.shape[:2]
        if self._ref is None:
            return np.array([w / 2, h / 2])
        small = self._small(image)
        k = small.shape[1] / image.shape[1]
        outside = np.ones(small.shape, bool)
        for b in [*boxes, *self._ref_boxes]:
            x0, y0 = np.floor(b[:2] * k).astype(int).clip(0)
            x1, y1 = np.ceil(b[2:] * k).astype(int)
            outside[y0:y1, x0:x1] = False
        moved = (np.abs(small - self._ref) > self.LEVEL) & outside
        if moved.sum() <= max(2.0, self.SHARE * outside.sum()):
            return None
        ys, xs = np.nonzero(moved)
        return (np.array([xs.mean(), ys.mean()]) + 0.5) / k


class MultiPoseDetector:
    """Finds every person per frame, each with landmarks from a pass on their own region.

    ``detect(image, frame_index, time, tracker)`` returns the frame's detections (payload: ``Landmarks``);
    after ``tracker.update`` the caller hands the updates and ended ids to ``bind`` so each track keeps
    its landmarker.
    """

    def __init__(self, fps: float = 30.0, discover_s: float = 0.25, calm_s: float = 1.0, idle_s: float = 3.0,
                 alone_idle_s: float = 10.0):
        fps = fps or 30.0
        self.discover_every = max(1, int(round(discover_s * fps)))
        self.calm_every = max(self.discover_every, int(round(calm_s * fps)))
        self.idle_every = max(self.calm_every, int(round(idle_s * fps)))
        self.alone_idle_every = max(self.idle_every, int(round(alone_idle_s * fps)))
        self._still = Stillness()
        self._idle = 0  # frames since discovery last ran (not skipped)
        self._detector = None  # MediaPipe's pose detector alone, created when first needed
        self._regions = _RegionPasses()
        self._cropped: set[int] = set()  # tracks that the whole frame lost once: crops from then on
        self._origin: dict[int, int] = {}  # id(detection) -> the key of the region pass that made it
        self._since = 1 << 30  # frames since the last discovery
        self._calm = self._tile = self._discoveries = 0  # _calm: frames since the people in view last changed
        self._last_ids: list[int] = []
        self._next_key = -1  # region passes on new people use negative keys until ``bind`` names the track
        self.stats = {"frames": 0, "region_passes": 0, "discovery_passes": 0, "tile_passes": 0,
                      "new_person_passes": 0, "discoveries_skipped": 0}

    def detect(self, image: np.ndarray, frame_index: int, time_s: float, tracker) -> list[Detection]:
        """Discovery is due every ``discover_s``; once every track has been found on each frame for ``calm_s``
        (and discovery found nobody new), every ``calm_s``. While someone is tracked, a due discovery is
        skipped when nothing changed outside the tracked people since the last one (``Stillness``), for up
        to ``idle_s`` (``alone_idle_s`` for one person alone in view: see ``_idle_limit``)."""
        self._origin.clear()
        open_ids = tracker.open_track_ids
        predicted = {tid: tracker.predict(tid, frame_index, time_s) for tid in open_ids}
        self.stats["frames"] += 1
        dets = self._track_passes(image, time_s, tracker, predicted)
        if len(dets) < len(open_ids) or open_ids != self._last_ids:
            self._calm = 0
        self._last_ids = open_ids
        calm = self._calm >= self.calm_every
        self._since += 1
        self._idle += 1
        if not open_ids or self._since >= (self.calm_every if calm else self.discover_every):
            self._since = 0
            where = None if not open_ids else self._still.moved(image, [d.box for d in dets])
            if not open_ids or self._idle >= self._idle_limit(open_ids, dets) or where is not None:
                new = self._new_people(image, time_s, predicted, dets, calm, where)
                self._calm = 0 if new else self._calm
                dets += new
                self._idle = 0
                self._still.remember(image, [d.box for d in dets])
            else:
                self.stats["discoveries_skipped"] += 1
        self._calm += 1
        return dets

    def _idle_limit(self, open_ids: list[int], dets: list[Detection]) -> int:
        """Frames discovery may rest while nothing changes outside the tracked people: ``alone_idle_s`` while one
        person is tracked, found on this frame on the whole frame (MediaPipe's own single-person path) with a
        mean visibility of ``CONFIDENT`` or more: whoever else comes into view changes pixels outside them
        (``Stillness``); else ``idle_s``."""
        alone = (len(open_ids) == 1 and len(dets) == 1 and dets[0].source == open_ids[0]
                 and self._regions.whole(open_ids[0]) and dets[0].score >= CONFIDENT)
        return self.alone_idle_every if alone else self.idle_every

    def _track_passes(self, image, time_s: float, tracker, predicted: dict) -> list[Detection]:
        """A region pass per open track (recently seen people first), other people's predicted boxes hidden in
        its crop; then ``_settle`` decides which passes stand."""
        h, w = image.shape[:2]
        found: dict[int, Detection] = {}
        todo = sorted(predicted, key=tracker.last_frame, reverse=True)
        for tid in todo[:MAX_REGION_PASSES]:
            box = predicted[tid]
            centre = np.clip(0.5 * (box[:2] + box[2:]), 0, [w - 1, h - 1])
            half = 0.5 * (box[2:] - box[:2])
            self.stats["region_passes"] += 1
            others = [predicted[t] for t in predicted if t != tid]
            own = np.concatenate([centre - half, centre + half])
            whole = not others and tid not in self._cropped and max(half) >= WHOLE_MIN * max(h, w)
            d = self._regions.run(tid, image, own, time_s, hide=others, whole=whole)
            if d is None and whole:  # the whole frame lost them (MediaPipe's own detector misses small people)
                self._cropped.add(tid)
                d = self._regions.run(tid, image, own, time_s)
            if d is None:
                continue
            if box_iou_one(predicted[tid], d.box) < MIN_OWN_IOU:  # alone on the whole frame: someone else
                self._regions.reset(tid, time_s)
                continue
            found[tid] = d
        keep = self._settle(found, predicted, tracker)
        dets = []
        for tid, d in found.items():
            if tid not in keep:
                self._regions.reset(tid, time_s)
                continue
            self._origin[id(d)] = tid
            d.source = tid
            dets.append(d)
        return dets

    @staticmethod
    def _settle(found: dict[int, Detection], predicted: dict, tracker) -> set[int]:
        """The tracks whose pass stands. Of passes landing on the same person (IoU above ``DUPLICATE_IOU``)
        only the one of the track seen most recently stands (a person hidden behind another cannot take the
        visible one's place while they overlap), then the one nearest its own prediction. A pass that fits
        another track's prediction better than its own, where that track's own pass found nobody there, slid
        onto someone else (a crossing): it falls, and so does one whose box is ``SIZE_JUMP`` times the size the
        track has had (landmarks lost in a flip or a blur spread over half the frame)."""
        found = {t: d for t, d in found.items()
                 if np.hypot(*(d.box[2:] - d.box[:2])) <= SIZE_JUMP * tracker.typical_size(t)}
        if len(predicted) == 1:  # one track: no other pass to share a person with, no one else to slide onto
            return set(found)
        ids = list(found)
        boxes = np.stack([found[t].box for t in ids]) if ids else np.zeros((0, 4))
        same = box_iou(boxes, boxes) > DUPLICATE_IOU
        rank = {t: (tracker.last_frame(t), box_iou_one(predicted[t], found[t].box)) for t in ids}
        keep = set()
        for i, tid in enumerate(ids):
            twins = [ids[j] for j in np.flatnonzero(same[i]) if j != i]
            if any(rank[t] > rank[tid] for t in twins):
                continue
            fits = {t: box_iou_one(predicted[t], found[tid].box) for t in predicted}
            best = max(fits, key=lambda t: fits[t])
            if best != tid and fits[best] > fits[tid] + 0.05 and best not in twins:
                continue
            keep.add(tid)
        return keep

    def _new_people(self, image, time_s: float, predicted: dict, dets: list[Detection], calm: bool,
                    where: np.ndarray | None = None) -> list[Detection]:
        """Discovery: detector boxes that no tracked person accounts for, each with a landmark pass. With nobody
        tracked, a landmarker's whole-frame pass comes first (``_look``)."""
        known = [d.box for d in dets]
        out: list[Detection] = []
        look = None if predicted else self._look(image, time_s)
        cands = self._candidates(image, bool(predicted), calm, where, None if look is None else look[2])
        if look is not None and not self._alone(image, cands, look[1]):
            self._regions.release(look[0], time_s, forget=look[3])  # to the pool, for the passes below
            look = None
        for cand in cands:
            if any(_same_person(cand.box, k) for k in known):
                continue
            self.stats["new_person_passes"] += 1
            if look is not None:  # the whole-frame pass found this person, alone in view
                key, d = look[:2]
            else:
                key, self._next_key = self._next_key, self._next_key - 1
                d = self._regions.run(key, image, cand.box, time_s, scale=DETECTION_SCALE)
            if d is None or _found_already(d.box, [x.box for x in (*dets, *out)]):
                self._regions.release(key, time_s)
                continue
            self._origin[id(d)] = key
            out.append(d)
            known.append(d.box)
        return out

    def _look(self, image: np.ndarray, time_s: float) -> tuple[int, Detection | None, list[Detection], bool]:
        """Nobody tracked: a whole-frame pass by a landmarker that follows nobody, as MediaPipe's single-person
        path makes. Its own pose detector runs on the frame then and finds whom the discovery detector would
        there (the same graph on the same image), so that one need not run. Returns (the landmarker's key,
        its person or None, the detector's people, whether it follows someone)."""
        key, self._next_key = self._next_key, self._next_key - 1
        return key, *self._regions.look(key, image, time_s)

    @staticmethod
    def _alone(image: np.ndarray, cands: list[Detection], found: Detection | None) -> bool:
        """Whether the whole-frame pass ``found`` the only candidate, large enough for MediaPipe's own
        whole-frame detector (``WHOLE_MIN``): it is then that person's first pass (the track's next passes
        take the whole frame too, so its landmarker goes on without starting afresh)."""
        if found is None or len(cands) != 1:
            return False
        box = cands[0].box
        return bool(0.5 * (box[2] - box[0]) >= WHOLE_MIN * max(image.shape[:2]) and _same_person(box, found.box))

    def _candidates(self, image, tracking: bool, calm: bool, where: np.ndarray | None = None,
                    found: list[Detection] | None = None) -> list[Detection]:
        """The detector on the whole frame (``found``: its people there, known already), plus tiles of large
        frames (see the module docstring): while tracking, the tile centred nearest to ``where`` (something
        moved there) or the next in turn."""
        h, w = image.shape[:2]
        self.stats["discovery_passes"] += 1
        found = self._detect(image, (0, 0, w, h)) if found is None else list(found)
        regions: list = []
        if max(w, h) >= TILE_MIN_SIDE:
            grid = tiles(w, h)
            if not tracking:
                regions = grid
            elif where is not None:
                regions = [min(grid, key=lambda t: float(np.hypot(0.5 * (t[0] + t[2]) - where[0],
                                                                  0.5 * (t[1] + t[3]) - where[1])))]
            elif not calm or self._discoveries % TILE_EVERY == 0:
                regions = [grid[self._tile % len(grid)]]
                self._tile += 1
            self._discoveries += 1
        # A tile mostly covered by someone found on the whole frame holds no one the detector missed there.
        regions = [r for r in regions if not any(_covers(f.box, r) for f in found)]
        self.stats["tile_passes"] += len(regions)
        for region in regions:
            for d in self._detect(image, region):
                side = d.box[2] - d.box[0]
                near = [f for f in found if np.abs(f.box[:2] - d.box[:2]).max() < 0.25 * side]
                if not near:
                    found.append(d)
        return found

    def _detect(self, image, region) -> list[Detection]:
        x0, y0, x1, y1 = region
        if self._detector is None:
            self._detector = _pose_detector()
        with quiet_native_stderr():
            res = self._detector.process({"image": np.ascontiguousarray(image[y0:y1, x0:x1])})
        return _body_squares(res.detections, x0, y0, x1 - x0, y1 - y0)

    def bind(self, updates, ended, time_s: float) -> None:
        """After ``tracker.update``: each track keeps the landmarker that found it; ended tracks, and new
        people's passes that started no track, free theirs."""
        for u in updates:
            src = self._origin.get(id(u.detection))
            if src is not None and src != u.track_id:
                self._regions.move(src, u.track_id)
        for tid in [*ended, *(k for k in self._regions.keys() if k < 0)]:
            self._regions.release(tid, time_s)

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
        self._regions.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LandmarksInBoxes:
    """Landmarks inside the user's boxes (``--boxes`` with the keypoints engine): a region pass per user id
    (per box position in the frame's list where the file gives no ids)."""

    def __init__(self):
        self._regions = _RegionPasses()

    def __call__(self, image: np.ndarray, time_s: float, boxes: list[Detection]) -> list[Detection]:
        out = []
        for k, det in enumerate(boxes):
            key = det.track_hint if det.track_hint is not None else -1 - k
            found = self._regions.run(key, image, det.box, time_s)
            if found is None:
                continue
            out.append(Detection(box=det.box, score=found.score, track_hint=det.track_hint, payload=found.payload))
        return out

    def close(self) -> None:
        self._regions.close()
