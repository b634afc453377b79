"""Capture of one clip: video decoding, detection, tracking, the engines and the motion-file writer.

``pipeline.capture`` runs it: video -> ``tracks.TrackingPass`` -> an engine from ``engines`` -> one motion
file per person (``writer``) + summary.json. May import ``network``, ``body_model``, ``geometry``,
``motion_file``, ``util`` and ``errors``; never ``training``, ``evaluation``, ``synthetic`` or ``cli``.
"""
