"""scopeml: machine-learning segmentation and classification of large microscopy images."""

from scopeml.errors import ScopeMLError

__version__ = "0.1.0"
__all__ = ["ScopeMLError", "__version__"]
