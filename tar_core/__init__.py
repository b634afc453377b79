"""TAR Mocap engine: video to SMPL motion (Temporal-Aware Refining Network, Chen et al. 2023).

Packages by layer; each may import only the layers below it (tests/test_layers.py enforces it):

- ``errors``: the one error scheme (exit codes); ``util``: atomic writes, progress, cancellation;
- ``geometry``: camera, rotations, crops; ``body_model``: SMPL / mannequin; ``motion_file``: the contract
  with the add-on (numpy only);
- ``network``: configs, checkpoints, the TAR network; ``synthetic``: renders with exact ground truth;
- ``capture``: video -> people -> motion files (both engines); ``training``; ``evaluation``;
- ``cli``: the command line, the only place errors become output.
"""

__version__ = "0.1.0"
