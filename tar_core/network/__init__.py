"""TAR network: image backbones, temporal encoders (GTE, LTE) and the recurrent refining module."""
