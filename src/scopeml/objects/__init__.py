"""Objects: instance labels across tiles, measurements, hierarchical classes, object classifier."""
