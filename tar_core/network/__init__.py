"""The TAR network and everything that describes it: configs and named variants, checkpoints, image
backbones, the global and local temporal encoders (GTE, LTE) and the recurrent refining module (RRM).

May import ``body_model``, ``geometry``, ``util`` and ``errors``; never ``capture``, ``training``,
``evaluation``, ``synthetic`` or ``cli``.
"""
