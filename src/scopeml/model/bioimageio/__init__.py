"""bioimage.io model packages in and out (needs the ``bioimageio`` extra: ``bioimageio.spec``).

:func:`import_bioimageio` turns a package (zip, folder or ``rdf.yaml``/``bioimageio.yaml``, format
0.4 or 0.5, ONNX weights) into a czann; :func:`export_bioimageio` writes a czann as a 0.5
package with test tensors, a cover, documentation and a citation.
"""

from scopeml.model.bioimageio.export import export_bioimageio
from scopeml.model.bioimageio.importer import import_bioimageio, read_test_tensors
from scopeml.model.bioimageio.package import Package, is_package, open_package

__all__ = [
    "Package",
    "export_bioimageio",
    "import_bioimageio",
    "is_package",
    "open_package",
    "read_test_tensors",
]
