"""Training TAR: data sources and mixing, the synthetic-clip and real-dataset readers, augmentation,
losses and the training loop (one checkpoint dict, resumable, DDP-ready).

May import ``network``, ``synthetic`` (the clip-file format), ``body_model``, ``geometry``, ``util`` and
``errors``; never ``capture``, ``evaluation`` or ``cli``.
"""
