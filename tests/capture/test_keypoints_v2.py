"""The keypoints engine's parts on synthetic landmarks made with the body model (exact truth, no rendering):
analytic IK, arms overhead, seams, contacts, focal length, filter, work per frame, progress and stop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tar_core.body_model import load_body_model
from tar_core.capture.engines import keypoints as kp
from tar_core.capture.engines.keypoints import contacts as ct
from tar_core.capture.engines.keypoints.filters import lowpass
from tar_core.capture.engines.keypoints.focal import estimate_focal
from tar_core.capture.engines.keypoints.ik import rest_body, solve_ik
from tar_core.capture.engines.keypoints.landmarks import MP_TO_BODY, TrackArrays
from tar_core.capture.engines.keypoints.optim import lbfgs_rows
from tar_core.capture.engines.keypoints.solver import ATTACHED, SolveConfig
from tar_core.errors import Cancelled
from tar_core.geometry import camera as cam
from tar_core.geometry.rotations import axis_angle_to_matrix
from tar_core.util.stop import StopFlag

W, H = 640, 480


@pytest.fixture(scope="module")
def body():
    return load_body_model()


def posed(body, poses: np.ndarray, trans: np.ndarray | None = None) -> np.ndarray:
    """(N, 45, 3) joints and extra points of the body posed by axis-angle poses (N, 72)."""
    p = torch.tensor(poses, dtype=torch.float32)
    t = None if trans is None else torch.tensor(trans, dtype=torch.float32)
    with torch.no_grad():
        o = body(p[:, :3], p[:, 3:], None, t, full_mesh=False)
    return torch.cat([o.joints, o.extra_joints], 1).double().numpy()


def landmarks(pts: np.ndarray) -> np.ndarray:
    """(N, 33, 3) MediaPipe-like landmarks at the body's own points (hands at the hand joints)."""
    lm = np.repeat(pts[:, 24:25], 33, axis=1)  # points not used (inner eyes, mouth) at the nose
    for m, k in MP_TO_BODY.items():
        lm[:, m] = pts[:, k]
    for m, k in ((17, 22), (19, 22), (18, 23), (20, 23)):
        lm[:, m] = pts[:, k]
    return lm


def track(body, poses, trans, focal=800.0, noise_px=0.0, noise_m=0.0, seed=0, fps=30.0) -> TrackArrays:
    """A track seen by a camera at the origin: 2D landmarks projected, world landmarks hip-centred."""
    rng = np.random.default_rng(seed)
    lm = landmarks(posed(body, poses, trans))
    K = cam.intrinsics(focal, (W / 2, H / 2))
    xy = cam.project(lm, K) + rng.normal(0, noise_px, lm.shape[:2] + (2,)) if noise_px else cam.project(lm, K)
    world = lm - 0.5 * (lm[:, 23:24] + lm[:, 24:25]) + rng.normal(0, noise_m, lm.shape)
    vis = np.zeros((len(lm), 33))
    vis[:, list(MP_TO_BODY)] = 0.95
    vis[:, 17:23] = 0.95
    boxes = np.concatenate([xy.min(1) - 10, xy.max(1) + 10], 1)
    n = len(poses)
    return TrackArrays(ids=np.arange(n), times=np.arange(n) / fps, observed=np.ones(n, bool), xy=xy, vis=vis,
                       world=world, boxes=boxes)


def upright(n: int) -> np.ndarray:
    """(n, 72) facing the camera, upright in OpenCV axes (y down)."""
    poses = np.zeros((n, 72))
    poses[:, 0] = np.pi
    return poses


def bend_deg(pts, a, b, c) -> np.ndarray:
    u, v = pts[:, a] - pts[:, b], pts[:, c] - pts[:, b]
    cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    return 180 - np.degrees(np.arccos(np.clip(cos, -1, 1)))


def test_analytic_ik_reproduces_known_poses_exactly(body):
    poses = upright(3)
    poses[0, 3 * 18 + 1] = -np.pi / 2  # left elbow at 90 degrees
    poses[1, 3 * 19 + 1] = np.pi / 2  # right elbow at 90
    poses[2, 3 * 16 + 2], poses[2, 3 * 19 + 1], poses[2, 3 * 4], poses[2, 3 * 1] = 1.2, 1.0, 1.3, -0.8
    pts = posed(body, poses)
    R = solve_ik(landmarks(pts), rest_body(body, np.zeros(10)))
    Rt = torch.tensor(R, dtype=torch.float32)
    with torch.no_grad():
        fit = body.skeleton(Rt, torch.zeros(3, 10)).double().numpy()
    rel = lambda p: p[:, :24] - p[:, :1]  # noqa: E731
    assert np.abs(rel(fit) - rel(pts)).max() < 1e-4  # metres
    assert bend_deg(fit, 16, 18, 20)[0] == pytest.approx(90.0, abs=0.1)
    assert bend_deg(fit, 17, 19, 21)[1] == pytest.approx(90.0, abs=0.1)


def test_arms_overhead_stay_overhead(body):
    n = 12
    poses = upright(n)
    raise_ = np.linspace(1.3, 1.5, n)  # upper arms 75-86 degrees above horizontal
    poses[:, 3 * 16 + 2], poses[:, 3 * 17 + 2] = raise_, -raise_
    poses[:, 3 * 18 + 1], poses[:, 3 * 19 + 1] = -0.5, 0.5  # elbows bent 29 degrees
    trans = np.tile([0.1, 0.2, 3.5], (n, 1))
    fit = kp.fit_track(body, track(body, poses, trans, noise_px=1.0, noise_m=0.01), cam.intrinsics(800, (W / 2, H / 2)),
                       kp.FitConfig(), StopFlag())
    pts = posed(body, fit.poses, fit.trans)
    head_y = pts[:, 15, 1]
    assert (pts[:, 20, 1] < head_y - 0.15).all() and (pts[:, 21, 1] < head_y - 0.15).all()  # y is down
    assert np.abs(bend_deg(pts, 16, 18, 20) - 28.6).mean() < 8


def test_long_track_has_no_seam_at_chunk_boundaries(body):
    n, chunk = 150, 40
    t = np.arange(n) / 30.0
    poses = upright(n)
    poses[:, 3 * 16 + 2] = -1.0 + 0.5 * np.sin(2 * np.pi * 0.7 * t)
    poses[:, 3 * 18 + 1] = -0.6 - 0.4 * np.sin(2 * np.pi * 0.9 * t)
    poses[:, 3 * 4] = 0.4 + 0.3 * np.sin(2 * np.pi * 0.5 * t)
    trans = np.stack([0.3 * np.sin(t), np.full(n, 0.2), 4.0 + 0.5 * t], 1)
    cfg = kp.FitConfig(solve=SolveConfig(chunk=chunk), pin_feet=False)
    fit = kp.fit_track(body, track(body, poses, trans, noise_px=1.5, noise_m=0.01, seed=3),
                       cam.intrinsics(800, (W / 2, H / 2)), cfg, StopFlag())
    joints = posed(body, fit.poses, fit.trans)[:, :24]
    acc = np.linalg.norm(joints[2:] - 2 * joints[1:-1] + joints[:-2], axis=-1).mean(1)  # frames 1..n-2
    seams = [b - 1 + d for b in range(chunk, n, chunk) for d in (-1, 0)]  # accel indices touching a boundary
    others = np.delete(acc, seams)
    assert acc[seams].max() <= 1.5 * np.percentile(others, 95), (acc[seams], np.percentile(others, 95))


def test_contacts_on_a_track_with_known_planted_frames():
    n, fps = 60, 30.0
    t = np.arange(n) / fps
    up = np.array([0.0, -np.cos(0.3), np.sin(0.3)])  # camera looking down 17 degrees
    fwd = np.cross(up, [1.0, 0.0, 0.0])
    planted = {0: (t < 0.5) | (t >= 1.0), 1: np.ones(n, bool)}  # left foot swings 0.5-1.0 s, right stands
    feet = np.zeros((n, 4, 3))
    for side, mask in planted.items():
        swing = np.clip((t - 0.5) / 0.5, 0, 1) if side == 0 else np.zeros(n)
        lift = np.where(mask, 0.0, 0.12 * np.sin(np.pi * swing))
        base = np.array([0.15 * (1 - 2 * side), 1.6, 4.0]) + 0.6 * swing[:, None] * fwd + lift[:, None] * up
        feet[:, 2 * side] = base  # heel
        feet[:, 2 * side + 1] = base + 0.2 * fwd  # toe
    joints = np.zeros((n, 24, 3))
    joints[:, 0] = feet[:, 0] + 0.9 * up
    joints[:, 12] = joints[:, 0] + 0.5 * up
    c = ct.estimate_contacts(joints, feet, t)
    truth = np.stack([planted[0], planted[0], planted[1], planted[1]], 1)
    edge = np.zeros(n, bool)
    edge[[14, 15, 16, 29, 30, 31]] = True  # a frame either side of a change may go either way
    assert ((c.prob > 0.5) == truth)[~edge].all()
    assert np.degrees(np.arccos(abs(c.ground[:3] @ up))) < 5
    target, weight = ct.pin_targets(feet, c, t)
    assert np.ptp(target[30:, 0], axis=0).max() < 1e-9 and weight[35:, 0].min() > 0.8


@pytest.mark.parametrize("focal", [500.0, 800.0, 1200.0, 1600.0])
def test_focal_estimate_within_15_percent(body, focal):
    n = 30
    rng = np.random.default_rng(int(focal))
    poses = upright(n) + np.concatenate([np.zeros((n, 3)), rng.normal(0, 0.25, (n, 69))], 1)
    poses[:, 1] += np.linspace(0, 2.5, n)  # the person turns
    trans = np.tile([0.1, 0.2, focal * 1.8 / 380], (n, 1))  # about 380 px tall whatever the lens
    a = track(body, poses, trans, focal=focal, noise_px=1.0, noise_m=0.005)
    est = estimate_focal(a.xy, a.vis, a.world, W, H, StopFlag())
    assert est.method == "landmarks"
    assert abs(est.focal - focal) / focal < 0.15, est


def test_planted_feet_hold_still_and_stay_on_the_image(body):
    """Standing still, seen with noisy landmarks: pinning the planted feet steadies them. "depth" moves the
    whole body along the viewing rays (the image does not change; the legs' own depth noise stays);
    "ground" solves the legs to hold each foot where its rays meet the ground (steadier still, and the
    joints' 2D error against the truth no worse)."""
    n = 60
    trans = np.tile([0.0, 0.2, 4.0], (n, 1))
    a = track(body, upright(n), trans, noise_px=1.5, noise_m=0.005)
    K = cam.intrinsics(800, (W / 2, H / 2))
    truth = cam.project(posed(body, upright(n), trans)[:, :24], K)
    feet, image, err = {}, {}, {}
    for mode in ("off", "depth", "ground"):
        fit = kp.fit_track(body, a, K, kp.FitConfig(pin_feet=mode != "off", pin_mode=mode), StopFlag())
        pts = posed(body, fit.poses, fit.trans)
        feet[mode] = np.linalg.norm(np.diff(pts[:, [7, 8, 10, 11]], axis=0), axis=-1).mean()
        image[mode] = cam.project(pts[:, :24], K)
        err[mode] = np.linalg.norm(image[mode] - truth, axis=-1).mean()
    # depth: 0.86 (below 0.85 before the filter's ends were fitted, which steadied "off" too)
    assert feet["depth"] < 0.9 * feet["off"] and feet["ground"] < 0.5 * feet["off"], feet
    assert np.linalg.norm(image["depth"] - image["off"], axis=-1).mean() < 0.3
    assert err["ground"] < err["off"] + 0.05, err


def test_a_foot_the_image_sees_moving_is_not_pinned_to_the_ground():
    """``ground_targets``: a still foot point gets one target where its rays meet the ground at its own
    height; a point that slides along the floor while it reads as planted (slow enough) gets no pin."""
    n, fps = 30, 30.0
    t = np.arange(n) / fps
    up = np.array([0.0, -np.cos(0.3), -np.sin(0.3)])  # a camera 2.7 m above the floor, looking down
    ground = np.array([*up, -(up @ np.array([0.0, 1.6, 4.0]))])  # through the still heel
    feet = np.tile(np.array([0.0, 1.6, 4.0]), (n, 4, 1))
    feet[:, 1] += 0.02 * up  # a toe standing 2 cm higher
    feet[:, 2] += np.array([0.5, 0.0, 0.0]) + 0.01 * np.arange(n)[:, None] * np.array([1.0, 0.0, 0.0])  # slides
    feet[:, 3] = feet[:, 2] + 0.02 * up
    rng = np.random.default_rng(0)
    noisy = feet * (1 + rng.normal(0, 0.01, (n, 4, 1)))  # depth noise: along each point's ray
    c = ct.Contacts(prob=np.full((n, 4), 0.9), ground=ground, method="contacts")
    target, weight = ct.ground_targets(noisy, c, t, np.ones(n))
    assert np.abs(target[:, 0] - feet[:, 0]).max() < 0.01 and np.abs(target[:, 1] - feet[:, 1]).max() < 0.01
    assert weight[5:-5, :2].min() > 0.5 and weight[:, 2:].max() == 0.0


def test_a_planted_foot_seen_at_a_grazing_angle_is_pinned_despite_noise_and_misreads():
    """``ground_targets`` with a level camera 1 m above the floor and the feet 6 m away: the rays graze the
    ground, so 1.6 px of image noise scatters their meetings with it ~7 cm along the ray (depth the image does
    not see); and on 3 frames the heel is misread 25 cm to the side. The run is still a plant: the frames the
    image sees in place are pinned near the true heel, the misread ones are not."""
    n, fps = 30, 30.0
    t = np.arange(n) / fps
    up = np.array([0.0, -1.0, 0.0])
    ground = np.array([*up, 1.0])  # the floor 1 m below the camera
    heel = np.array([0.0, 1.0, 6.0])
    feet = np.tile(heel, (n, 4, 1))
    feet[:, 1] += np.array([0.0, -0.02, 0.2])  # toe: 20 cm ahead, 2 cm higher
    feet[:, 2:] += np.array([0.3, 0.0, 0.0])  # the other foot beside it
    rng = np.random.default_rng(1)
    seen = feet + np.concatenate([np.zeros((n, 4, 1)), rng.normal(0, 0.012, (n, 4, 1)), np.zeros((n, 4, 1))], -1)
    misread = [8, 15, 22]
    seen[misread, 0] += np.array([0.25, 0.0, 0.0])
    c = ct.Contacts(prob=np.full((n, 4), 0.9), ground=ground, method="contacts")
    target, weight = ct.ground_targets(seen, c, t, np.ones(n))
    kept = np.setdiff1d(np.arange(n), misread)
    assert weight[kept, 0].min() > 0.5 and weight[misread, 0].max() == 0.0
    assert np.linalg.norm(target[kept, 0] - heel, axis=-1).max() < 0.04
    assert weight[:, 1:].min() > 0.5


def test_world_landmarks_are_smoothed_before_the_start_and_the_image_ones_kept(body):
    """The world landmarks (frame-by-frame estimates) are low-passed at the motion's cut-off before the
    analytic start: their jitter falls, a slow bend survives, and the 2D landmarks are untouched."""
    n = 90
    poses = upright(n)
    poses[:, 3 * 18 + 1] = np.linspace(-0.2, -1.4, n)  # the left elbow bends over three seconds
    clean = track(body, poses, np.tile([0.0, 0.2, 3.5], (n, 1)))
    noisy = track(body, poses, np.tile([0.0, 0.2, 3.5], (n, 1)), noise_m=0.02)
    out = kp._smoothed_world(noisy, 4.0)
    mid = slice(10, -10)
    err_in = np.abs(noisy.world - clean.world)[mid].mean()
    err_out = np.abs(out.world - clean.world)[mid].mean()
    assert err_out < 0.5 * err_in, (err_in, err_out)
    assert np.array_equal(out.xy, noisy.xy) and np.array_equal(out.vis, noisy.vis)


def test_filter_cut_off_is_in_hertz_of_real_time():
    def signal(t):
        return np.sin(2 * np.pi * 1.0 * t) + 0.5 * np.sin(2 * np.pi * 12.0 * t)  # 1 Hz motion + 12 Hz jitter

    for fps in (24.0, 60.0):
        t = np.arange(int(3 * fps)) / fps
        out = lowpass(signal(t), t, 4.0)
        mid = slice(len(t) // 4, 3 * len(t) // 4)
        assert np.abs(out - np.sin(2 * np.pi * t))[mid].max() < 0.08, fps
    rng = np.random.default_rng(0)  # variable frame rate: ~30 fps with jitter and dropped frames
    t = np.delete(np.arange(90) / 30.0 + rng.uniform(-0.004, 0.004, 90), [20, 21, 50, 71])
    out = lowpass(signal(t), t, 4.0)
    assert np.abs(out - np.sin(2 * np.pi * t))[24:46].max() < 0.1  # away from the gaps


def test_smoothing_cut_off_is_the_users_choice(body):
    """``capture --smooth-hz`` reaches the fit (its CLI default is the fit's own), and a lower cut-off gives
    a smoother motion from the same noisy landmarks."""
    from tar_core.capture.engines import build_engine
    from tar_core.cli.capture import DEFAULT_SMOOTH_HZ

    assert DEFAULT_SMOOTH_HZ == kp.FitConfig().cutoff_hz
    assert build_engine("keypoints", body=body, smooth_hz=2.0).cfg.cutoff_hz == 2.0
    n = 60
    poses = upright(n)
    poses[:, 3 * 18 + 1] = np.linspace(-0.2, -1.4, n)  # the left elbow bends over two seconds
    a = track(body, poses, np.tile([0.0, 0.2, 3.5], (n, 1)), noise_px=2.0, noise_m=0.01)
    K = cam.intrinsics(800, (W / 2, H / 2))
    jerk = {}
    for hz in (2.0, 8.0):
        fit = kp.fit_track(body, a, K, kp.FitConfig(cutoff_hz=hz), StopFlag())
        pts = posed(body, fit.poses, fit.trans)[:, :24]
        jerk[hz] = np.linalg.norm(np.diff(pts, 2, axis=0), axis=-1).mean()
    assert jerk[2.0] < 0.6 * jerk[8.0], jerk


def test_fit_work_per_frame_is_bounded(body):
    """Fit faster than detection, as a work bound: the solver's evaluations of a frame are capped by its
    iteration limit (plus the line search's few extra steps, on the frames that need them only), and one
    evaluation (forward + backward) costs a fixed number of matrix FLOPs per frame. docs/capture.md relates
    this to MediaPipe's measured speed."""
    from torch.utils.flop_counter import FlopCounterMode

    n = 64
    poses = upright(n)
    poses[:, 3 * 18 + 1] = -0.8
    a = track(body, poses, np.tile([0.0, 0.2, 3.5], (n, 1)), noise_px=1.0, noise_m=0.01)
    cfg = kp.FitConfig(pin_feet=False)
    fit = kp.fit_track(body, a, cam.intrinsics(800, (W / 2, H / 2)), cfg, StopFlag())
    per_frame = sum(fit.info["solver_row_evaluations"]) / n
    assert per_frame <= 1.25 * (cfg.solve.iters + 1)  # evaluations of one frame, line-search steps included
    R = torch.eye(3).expand(n, 24, 3, 3).clone().requires_grad_()
    with FlopCounterMode(display=False) as counter:
        body.skeleton(R, torch.zeros(n, 10), torch.zeros(n, 3), (0, 1, 2, 3, 4, 5, 7, 8, 10)).sum().backward()
    assert counter.get_total_flops() / n < 60_000  # matrix FLOPs per frame and evaluation


def test_solver_checks_stop_every_iteration_and_reports_progress(body):
    n = 90
    a = track(body, upright(n), np.tile([0.0, 0.2, 3.5], (n, 1)), noise_px=1.0)
    events = []
    kp.fit_track(body, a, cam.intrinsics(800, (W / 2, H / 2)), kp.FitConfig(solve=SolveConfig(chunk=64)),
                 StopFlag(), lambda stage, done, total: events.append((stage, done, total)))
    done = [0] + [d for s, d, _ in events if s == "fitting"]
    assert done[-1] == n and max(np.diff(done)) <= 30

    class StopAfter:
        def __init__(self, k):
            self.k = k

        def check(self):
            self.k -= 1
            if self.k < 0:
                raise Cancelled(2)

    def rosenbrock(x, rows):  # (k, d): one problem per row, the rows scaled apart so they need other steps
        x = x.detach().requires_grad_()
        scale = (torch.arange(len(x)) if rows is None else rows).to(x.dtype)[:, None] + 1
        f = (100 * (x[:, 1:] - x[:, :-1].square()).square() + (1 - x[:, :-1]).square()).mul(scale).sum(1)
        return f.detach(), torch.autograd.grad(f.sum(), x)[0]

    counting = StopAfter(10_000)
    res = lbfgs_rows(rosenbrock, torch.zeros(3, 6), 25, 0.0, counting)
    assert 10_000 - counting.k == res.iterations  # one check per iteration
    with pytest.raises(Cancelled):
        lbfgs_rows(rosenbrock, torch.zeros(3, 6), 25, 0.0, StopAfter(3))


def test_rows_are_solved_independently_to_their_own_optimum():
    """Each row of ``lbfgs_rows`` keeps its own steps: rows of very different scales all reach their
    optimum, and a row's result does not depend on which other rows share the batch."""

    def bowl(x, rows):  # row i: sum_j c_ij (x_ij - i)^2, condition number 1e3 within a row, 1e4 across rows
        x = x.detach().requires_grad_()
        i = (torch.arange(len(x)) if rows is None else rows).to(x.dtype)[:, None]
        c = torch.logspace(0, 3, x.shape[1], dtype=x.dtype)[None] * 10 ** i
        target = i
        f = (c * (x - target).square()).sum(1)
        return f.detach(), torch.autograd.grad(f.sum(), x)[0]

    res = lbfgs_rows(bowl, torch.zeros(5, 8, dtype=torch.float64), 300, 1e-15, StopFlag())
    assert torch.allclose(res.x, torch.arange(5, dtype=torch.float64)[:, None].expand(5, 8), atol=1e-4)
    for k in (25, 60):  # a row's path is its own: the same after k iterations alone as in the batch
        batch = lbfgs_rows(bowl, torch.zeros(5, 8, dtype=torch.float64), k, 0.0, StopFlag())
        alone = lbfgs_rows(lambda x, rows: bowl(x, torch.tensor([3]) if rows is None else rows + 3),
                           torch.zeros(1, 8, dtype=torch.float64), k, 0.0, StopFlag())
        assert torch.allclose(batch.x[3], alone.x[0], atol=1e-9)


def test_hips_seen_where_mediapipe_puts_them_are_fitted_at_the_joints(body):
    n = 10
    poses = upright(n)
    poses[:, 3 * 1], poses[:, 3 * 2] = np.linspace(-0.2, -0.8, n), -0.3  # hips flexed
    poses[:, 3 * 4], poses[:, 3 * 5] = np.linspace(0.2, 0.9, n), 0.4  # knees bent
    trans = np.tile([0.0, 0.1, 3.5], (n, 1))
    K = cam.intrinsics(800, (W / 2, H / 2))
    truth = posed(body, poses, trans)
    R = axis_angle_to_matrix(torch.tensor(poses, dtype=torch.float32).view(n, 24, 3))
    with torch.no_grad():
        seen = body.skeleton(R, torch.zeros(n, 10), torch.tensor(trans, dtype=torch.float32), (),
                             ATTACHED).double().numpy()[:, 24:]  # the hip landmarks where MediaPipe puts them
    assert np.linalg.norm(seen - truth[:, [1, 2]], axis=-1).min() > 0.03
    tr = track(body, poses, trans)
    tr.xy[:, [23, 24]] = cam.project(seen, K)
    tr.world[:, [23, 24]] += seen - truth[:, [1, 2]]
    fit = kp.fit_track(body, tr, K, kp.FitConfig(pin_feet=False), StopFlag())
    hips = posed(body, fit.poses, fit.trans)[:, [1, 2]]
    err = np.linalg.norm(hips - truth[:, [1, 2]], axis=-1).mean()
    assert err < 0.0135, err  # 17 mm when the fit takes the hip landmarks for the joints


def test_both_engines_camera_is_estimated_unless_given(body):
    """``job_camera`` (the keypoints and the tar engine alike): with no focal from the user the longest track's
    landmarks give it; a given one is kept."""
    from tar_core.capture.detection import Landmarks
    from tar_core.capture.engines.base import EngineJob
    from tar_core.capture.engines.keypoints import job_camera
    from tar_core.capture.tracks import TrackData

    n, focal = 30, 1200.0
    rng = np.random.default_rng(3)
    poses = upright(n) + np.concatenate([np.zeros((n, 3)), rng.normal(0, 0.25, (n, 69))], 1)
    poses[:, 1] += np.linspace(0, 2.5, n)
    a = track(body, poses, np.tile([0.1, 0.2, focal * 1.8 / 380], (n, 1)), focal=focal, noise_px=1.0, noise_m=0.005)
    lms = [Landmarks(image_xy=a.xy[k], visibility=a.vis[k], world=a.world[k]) for k in range(n)]
    short = TrackData(1, [0, 1], [0.0, 1 / 30], list(a.boxes[:2]), [0.9] * 2, lms[:2])  # too short to decide
    tracks = {1: short, 0: TrackData(0, list(range(n)), list(a.times), list(a.boxes), [0.9] * n, lms)}
    default = cam.intrinsics(float(np.hypot(W, H)), (W / 2, H / 2))
    job = EngineJob(clip="c.mp4", fps=None, tracks=tracks, frame_times=dict(enumerate(a.times.tolist())), K=default,
                    body=body, writer=None, progress=None, stop=StopFlag(), focal_source="default")
    K, est = job_camera(job)
    assert est.method == "landmarks" and abs(K[0, 0] - focal) / focal < 0.15 and K[1, 1] == K[0, 0]
    np.testing.assert_allclose(K[:2, 2], [W / 2, H / 2])
    given = cam.intrinsics(700.0, (W / 2, H / 2))
    K, est = job_camera(EngineJob(**{**vars(job), "K": given, "focal_source": "given"}))
    assert est.method == "given" and np.array_equal(K, given)
    blind = {0: TrackData(0, list(range(n)), list(a.times), list(a.boxes), [0.9] * n, [None] * n)}  # --boxes only
    K, est = job_camera(EngineJob(**{**vars(job), "tracks": blind}))
    assert est.method == "default" and np.array_equal(K, default)
