"""The tiling-and-fusion engine: plan tiles, run a model on them, fuse, write, resume."""
