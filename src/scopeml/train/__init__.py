"""Training small U-Nets with PyTorch and exporting them as containers (extra ``[train]``)."""
