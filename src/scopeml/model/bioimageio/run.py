"""A bioimage.io package run directly as a model: imported in memory, then run as its czann.

:func:`package_container` builds the czann :func:`~.importer.import_bioimageio` would write
(the same graph bytes and metadata, checked the same way) without writing it;
:func:`load_package` runs it. TorchScript weights, whose export to ONNX needs torch and takes
seconds, are exported once into the user cache (:func:`cache_dir`), keyed by the SHA-256 of
what the export reads; ONNX weights are wrapped in memory every time (milliseconds).
"""

from __future__ import annotations

import json
import os
from os import PathLike
from pathlib import Path
from typing import Any

from scopeml.errors import InvalidContainerError, ScopeMLError


def cache_dir() -> Path:
    """Where exported TorchScript weights are kept: ``$SCOPEML_CACHE/bioimageio`` or
    ``~/.cache/scopeml/bioimageio``."""
    root = os.environ.get("SCOPEML_CACHE") or Path.home() / ".cache" / "scopeml"
    return Path(root) / "bioimageio"


def package_container(source: str | PathLike[str], *, cache: bool = True) -> Any:
    """The :class:`~scopeml.model.container.Container` of a package (zip, folder or
    ``rdf.yaml``/``bioimageio.yaml``), imported in memory; its ``path`` is the package.

    Raises
    ------
    InvalidContainerError
        What :func:`~.importer.import_bioimageio` refuses (URLs, missing or unsupported weights,
        axes or steps scopeml cannot express), naming the package and the step.
    """
    return import_in_memory(source, cache=cache)[0]


def import_in_memory(source: str | PathLike[str], *, cache: bool = True) -> tuple[Any, Any]:
    """The package's container (as :func:`package_container`) and the
    :class:`~.importer.Imported` it was built from (axis roles, for the test tensors)."""
    from scopeml.model.bioimageio.importer import build_czann
    from scopeml.model.bioimageio.package import open_package
    from scopeml.model.container import CZANN_METADATA, CZANN_MODEL, parse_members
    from scopeml.model.metadata import repeated_classes

    path = Path(source)
    package = open_package(path)
    try:
        imported = build_czann(package, cache=cache_dir() if cache else None)
    finally:
        package.close()
    repeated = repeated_classes(imported.metadata)
    if repeated:  # as write_container refuses them
        raise InvalidContainerError(f"class names repeat: {', '.join(repeated)}", path=path)
    members = {  # the members write_container writes, read back as read_container reads them
        CZANN_METADATA: json.dumps(imported.metadata.to_json_dict(), indent=2).encode("utf-8"),
        CZANN_MODEL: imported.graph.SerializeToString(),
    }
    return parse_members(members, path=path), imported


def load_package(
    path: str | PathLike[str], workers: int | None = None, *, time_budget: float | None = None
) -> Any:
    """Open a package as a model (the registry's ``bioimageio`` loader): an
    :class:`~scopeml.model.runtime.OnnxModel` of its in-memory czann."""
    from scopeml.model.runtime import load_model

    return load_model(package_container(path), threads=workers, time_budget=time_budget)


#: How far the imported model may be from a package's test output: ``|got - expected| <=
#: ATOL + RTOL·|expected|`` (bioimage.io's own test asks about 1e-4; the engine's
#: normalisation statistics and float32 sums differ from the package's by more than that).
RTOL, ATOL = 1e-3, 1e-3


def check_package(
    source: str | PathLike[str],
    *,
    time_budget: float | None = None,
    memory_limit: int | None = None,
) -> list[str]:
    """Validate a package as scopeml runs it (``scopeml model validate PKG``): the description
    (``bioimageio.spec``), the import (weights, axes, steps), a zero probe tile and then the
    package's test input, which must give its test output, run as the probe runs (their
    tensors sized against ``memory_limit`` first, then one child process with its address
    space capped, each under ``time_budget``: :func:`run_imported`); then
    ``bioimageio.core``'s own model test when it is installed. Returns the lines to print.

    Raises
    ------
    InvalidContainerError
        The first check that fails, naming the package and the step or the difference (a
        tensor over the memory limit, an allocation past the cap).
    ModelTimeoutError
        The probe tile or the test input ran past the time budget.
    IncompatibleModelError
        The graph fails on the probe tile or the test input.
    """
    from scopeml.model.bioimageio.package import open_package

    path = Path(source)
    package = open_package(path)
    try:
        descr, version = package.description, package.original_format
        weights = [name for name in ("onnx", "torchscript") if getattr(descr.weights, name)]
        tests = _test_tensors(package)
    finally:
        package.close()
    container, imported = import_in_memory(path)
    meta = container.metadata
    used = "ONNX" if "onnx" in weights else "TorchScript (exported to ONNX)"
    lines = [
        f"{path}: valid bioimage.io package (format {version}, {used} weights), imported as a "
        f"czann in memory: {meta.model_type.value}, classes {', '.join(meta.classes or ())}, "
        f"halo {list(meta.min_overlap or ())}, normalisation {meta.normalize or 'none'}"
    ]
    limits = {"time_budget": time_budget, "memory_limit": memory_limit}
    ran = run_imported(path, imported, tests, limits)
    return lines + ran + _halo_check(imported, limits) + _core_test(path)


def _halo_check(imported: Any, limits: dict[str, Any]) -> list[str]:
    """The package's halo checked against its graph, as a container's MinOverlap is
    (:func:`~scopeml.model.validate.halo_warnings`): one too small validated, then results
    depended on the tile size."""
    import tempfile

    from scopeml.model.container import write_container
    from scopeml.model.validate import halo_warnings

    if not imported.metadata.model_type.is_pixelwise:
        return []
    with tempfile.TemporaryDirectory(prefix="scopeml-halo-") as folder:
        czann = write_container(Path(folder) / "package.czann", imported.graph,
                                imported.metadata)  # fmt: skip
        said = halo_warnings(czann, limits["time_budget"], limits["memory_limit"])
    return [f"warning: {line.replace('MinOverlap', 'halo')}" for line in said]


def run_imported(
    path: Path, imported: Any, tests: tuple[Any, Any], limits: dict[str, Any]
) -> list[str]:
    """Run an imported package (:class:`~.importer.Imported`) as ``model validate`` and
    ``model convert`` check it: a zero probe tile and the package's test input (``tests``, its
    test input and output), in one memory-capped child under the time budget
    (:func:`~scopeml.model.probe.run_isolated_all`); the test input must give the test output.
    Returns the lines saying what ran; errors name the package ``path``.

    A package whose axes disagree with its graph, or whose test output is wrong, was converted
    and then failed (or gave other values) on every image."""
    import tempfile

    from scopeml.model.container import write_container

    with tempfile.TemporaryDirectory(prefix="scopeml-package-") as folder:
        czann = write_container(Path(folder) / "package.czann", imported.graph, imported.metadata)
        try:
            return _run_checks(czann, imported, tests, limits, path)
        except ScopeMLError as err:
            if err.path != str(czann):
                raise
            raise type(err)(err.problem, path=path) from err  # the package, not the temporary


def _run_checks(
    czann: Path, imported: Any, tests: tuple[Any, Any], limits: dict[str, Any], path: Path
) -> list[str]:
    import numpy as np

    from scopeml.errors import IncompatibleModelError
    from scopeml.model.bioimageio.export import _normalized
    from scopeml.model.container import read_container
    from scopeml.model.probe import probe_spatial_shape, run_isolated_all
    from scopeml.model.runtime import model_spec

    meta = imported.metadata
    pixels, expected = _test_batches(imported, tests, path)
    shown = "×".join(map(str, pixels.shape[2:]))
    batches, names = [_normalized(pixels, meta.normalize)], [f"the package's {shown} test input"]
    if meta.model_type.is_pixelwise:  # a classifier runs on its test input only, as classify
        spec = model_spec(read_container(czann))
        batches.insert(0, np.zeros((1, spec.in_channels, *probe_spatial_shape(spec)), np.float32))
        names.insert(0, f"a {'×'.join(map(str, batches[0].shape[2:]))} probe tile")
    classifier = not meta.model_type.is_pixelwise
    outputs = run_isolated_all(czann, batches, what=names, classifier=classifier, **limits)
    lines = []
    if meta.model_type.is_pixelwise:
        if not np.all(np.isfinite(outputs[0])):
            raise IncompatibleModelError(
                "the graph returns non-finite values on a zero input", path=path
            )
        lines.append(f"  ran on {batches[0].shape[1:]} → {outputs[0].shape[1:]}")
    return [*lines, "  " + _compare(outputs[-1], expected, path)]


def _test_tensors(package: Any) -> tuple[Any, Any]:
    from scopeml.model.bioimageio.importer import read_test_tensors

    return read_test_tensors(package)


def _as_model_axes(array: Any, roles: tuple[str, ...]) -> Any:
    """A package tensor (axes as ``roles``) as ``N×C×[Z×]Y×X`` (``N×C`` without space)."""
    import numpy as np

    if array.ndim != len(roles):
        raise ValueError(f"{array.ndim} axes, the description declares {len(roles)}")
    order = [r for r in ("batch", "channel", "z", "y", "x") if r in roles]
    array = np.transpose(array, [roles.index(r) for r in order])
    if "batch" not in order:
        array = array[None]
    if "channel" not in order:
        array = np.expand_dims(array, 1)
    return array


def _test_batches(imported: Any, tests: tuple[Any, Any], path: Path) -> tuple[Any, Any]:
    """The package's test input and output as ``N×C×[Z×]Y×X`` float32 (the input not yet
    normalised: the engine normalises it over the whole test image, as bioimage.io does per
    sample)."""
    import numpy as np

    try:
        pixels = _as_model_axes(tests[0], imported.input_roles).astype(np.float32)
        expected = _as_model_axes(tests[1], imported.output_roles).astype(np.float32)
    except ValueError as err:
        raise InvalidContainerError(
            f"the test tensors do not fit their axes: {err}", path=path
        ) from err
    return pixels, expected


def _compare(got: Any, expected: Any, path: Path) -> str:
    """The imported model's output on the test input against the package's test output."""
    import numpy as np

    if got.shape != expected.shape:
        raise InvalidContainerError(
            f"the test input gives an output of shape {got.shape[1:]}; the package's test "
            f"output is {expected.shape[1:]} (axes as N×C×…)",
            path=path,
        )
    difference = np.abs(got.astype(np.float64) - expected)
    allowed = ATOL + RTOL * np.abs(expected)
    worst = float(np.max(difference)) if difference.size else 0.0
    if not np.all(difference <= allowed):
        share = float(np.mean(difference > allowed))
        raise InvalidContainerError(
            f"the imported model does not reproduce the package's test output: max difference "
            f"{worst:.3g} ({share:.1%} of values beyond {ATOL:g} + {RTOL:g}·|expected|)",
            path=path,
        )
    return f"reproduces the package's test output {expected.shape[1:]} (max difference {worst:.2g})"


def _core_test(path: Path) -> list[str]:
    """bioimageio.core's own model test, when installed (a warning line when it fails)."""
    try:
        from bioimageio.core import test_model
    except ImportError:
        return [
            "  bioimageio.core is not installed: its own model test was not run (install it: "
            "pip install 'scopeml[bioimageio]' && pip install --no-deps bioimageio.core==0.11.0)"
        ]
    try:
        summary = test_model(path)
    except Exception as err:  # its own failures (environment, versions) are reported, not fatal
        return [f"warning: bioimageio.core's model test could not run ({err})"[:300]]
    if summary.status == "passed":
        return ["  bioimageio.core's model test: passed"]
    errors = [f"{d.name}: {e.msg}" for d in summary.details for e in d.errors]
    first = errors[0] if errors else summary.status
    return [f"warning: bioimageio.core's model test: {summary.status} ({first})"[:300]]
