"""TAR Mocap engine: video to SMPL motion (Temporal-Aware Refining Network, Chen et al. 2023)."""

__version__ = "0.1.0"
