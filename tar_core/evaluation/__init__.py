"""Evaluation: the TCMR/GLoT protocol's metrics (MPJPE, PA-MPJPE, PVE, ACCEL) and the runs that produce
them for a checkpoint or the keypoints engine on held-out clips.

May import ``capture`` (to run an engine as users do), ``network``, ``synthetic`` (clip files),
``body_model``, ``geometry``, ``motion_file``, ``util`` and ``errors``; never ``training`` or ``cli``.
"""
