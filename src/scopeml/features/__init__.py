"""Multi-scale filter features for pixel classification."""
