"""The TAR engine stage: per-frame backbone features in a ring buffer, windows of T frames.

The backbone runs once per frame and person; its features wait in a ring buffer of T entries.
When frame t + T//2 arrives, frame t's window (frames t - T//2 .. t + T//2, clip edges padded by
repeating the first / last frame) is complete and queued; queued windows run through the temporal
part in batches. The RRM's last estimate is the frame's result.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from ..network.refinement import Geometry
from ..rotations import matrix_to_axis_angle

__all__ = ["FrameResult", "TarEngine"]


@dataclass
class FrameResult:
    track_id: int
    row: int  # position of the frame within its track
    poses: np.ndarray  # (72,)
    betas: np.ndarray  # (10,)
    trans: np.ndarray  # (3,)


@dataclass
class _Entry:
    row: int
    global_vec: torch.Tensor | None  # (Dg,) cached feature (None in naive mode)
    local_map: torch.Tensor | None  # (Dl, 64, 64)
    crop: torch.Tensor | None  # (3, S, S) kept only by the naive mode
    geom: tuple  # centre (2,), size, focal, principal (2,)


@dataclass
class _Track:
    entries: deque
    next_out: int = 0  # next row whose result is still to come
    last_row: int = -1


@dataclass
class _Window:
    track_id: int
    row: int
    entries: list  # T entries (edge-padded)
    geom: tuple


class TarEngine:
    """Feed crops per frame with ``add``; results come back as windows complete.

    cache_features=False recomputes the backbone for all T frames of every window (the naive way,
    kept for the benchmark's comparison).
    """

    def __init__(self, model, device: str | torch.device = "cpu", batch_windows: int = 8, cache_features: bool = True):
        self.model = model.eval().to(device)
        self.cfg = model.cfg
        self.device = torch.device(device)
        self.T = self.cfg.seq_len
        self.half = self.T // 2
        self.batch_windows = batch_windows
        self.cache = cache_features
        self.tracks: dict[int, _Track] = {}
        self.queue: list[_Window] = []
        self.frames_encoded = 0

    @torch.no_grad()
    def add(self, items: list[tuple[int, int, torch.Tensor, tuple]]) -> list[FrameResult]:
        """One video frame: items (track_id, row, crop (3, S, S), geometry). Returns finished results."""
        if not items:
            return []
        crops = torch.stack([c for _, _, c, _ in items]).to(self.device)
        if self.cache:
            g, m = self.model.encode_frames(crops)  # (B, Dg), (B, Dl, 64, 64): once per frame
            self.frames_encoded += len(items)
        for k, (tid, row, crop, geom) in enumerate(items):
            track = self.tracks.setdefault(tid, _Track(entries=deque(maxlen=self.T)))
            if row != track.last_row + 1:
                raise ValueError(f"track {tid}: rows must arrive in order (got {row} after {track.last_row})")
            track.last_row = row
            track.entries.append(_Entry(row, g[k] if self.cache else None, m[k] if self.cache else None,
                                        None if self.cache else crop, geom))
            # Frame row - half now has its whole window (unless it is near the clip's start: padded).
            while track.next_out <= row - self.half:
                self._queue(tid, track, track.next_out)
                track.next_out += 1
        return self._run(force=False)

    @torch.no_grad()
    def end_track(self, track_id: int) -> list[FrameResult]:
        """The track has no more frames: its last windows are padded by repeating the last frame."""
        track = self.tracks.get(track_id)
        if track is None:
            return []
        while track.next_out <= track.last_row:
            self._queue(track_id, track, track.next_out)
            track.next_out += 1
        del self.tracks[track_id]
        return self._run(force=True)

    def _queue(self, tid: int, track: _Track, row: int) -> None:
        by_row = {e.row: e for e in track.entries}  # the ring buffer holds every row a window needs
        rows = [min(max(r, 0), track.last_row) for r in range(row - self.half, row + self.half + 1)]  # edge padding
        self.queue.append(_Window(tid, row, [by_row[r] for r in rows], by_row[row].geom))

    def _run(self, force: bool) -> list[FrameResult]:
        out = []
        while self.queue and (force or len(self.queue) >= self.batch_windows):
            batch, self.queue = self.queue[: self.batch_windows], self.queue[self.batch_windows:]
            out += self._forward(batch)
        return out

    def _forward(self, batch: list[_Window]) -> list[FrameResult]:
        B, T = len(batch), self.T
        if self.cache:
            g = torch.stack([torch.stack([e.global_vec for e in w.entries]) for w in batch])  # (B, T, Dg)
            m = torch.stack([torch.stack([e.local_map for e in w.entries]) for w in batch])  # (B, T, Dl, 64, 64)
        else:  # naive: the backbone again for every frame of every window
            crops = torch.stack([torch.stack([e.crop for e in w.entries]) for w in batch]).to(self.device)
            g, m = self.model.encode_frames(crops.flatten(0, 1))
            self.frames_encoded += B * T
            g, m = g.view(B, T, -1), m.view(B, T, *m.shape[1:])
        tau, mid = self.cfg.tau, T // 2
        geom = Geometry(
            center=torch.tensor(np.array([w.geom[0] for w in batch]), dtype=torch.float32, device=self.device),
            size=torch.tensor([w.geom[1] for w in batch], dtype=torch.float32, device=self.device),
            focal=torch.tensor([w.geom[2] for w in batch], dtype=torch.float32, device=self.device),
            principal=torch.tensor(np.array([w.geom[3] for w in batch]), dtype=torch.float32, device=self.device),
        )
        est = self.model.forward_features(g, m[:, mid - tau: mid + tau + 1], geom)[-1]
        aa = matrix_to_axis_angle(est.rotmat.double()).reshape(B, 72).float().cpu().numpy()
        betas, trans = est.betas.cpu().numpy(), est.transl.cpu().numpy()
        return [FrameResult(w.track_id, w.row, aa[i], betas[i], trans[i]) for i, w in enumerate(batch)]
