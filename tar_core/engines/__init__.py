"""Capture engines: tar (the network) and keypoints (MediaPipe landmarks fitted with the body model)."""
