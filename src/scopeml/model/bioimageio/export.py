"""czann → bioimage.io model package (format 0.5): the czann's ONNX graph unchanged, channels-last
axes declared as they are, test tensors computed by scopeml, a cover, documentation, citations.

The package is checked by ``bioimageio.spec`` while it is built; ``bioimageio.core``'s own
model test (run in the tests) reproduces the test output from the test input.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from scopeml.errors import IncompatibleModelError, InvalidContainerError, InvalidRequestError
from scopeml.io.replace import atomic_write
from scopeml.model.metadata import default_classes

#: Default citation: the czann format the package was made from.
DEFAULT_CITATION = ("ZEISS czmodel: the czann model format", "https://pypi.org/project/czmodel/")
#: The real crop and its result a package made with ``sample=`` shows people (its sample
#: tensors).
SAMPLE, SAMPLE_OUTPUT = "sample_input.tif", "sample_output.tif"
#: Policies of the container (``ScopeMLNormalize``) and their bioimage.io preprocessing.
_SPATIAL_IDS = {2: ("y", "x"), 3: ("z", "y", "x")}


def export_bioimageio(
    model: str | PathLike[str] | Any,
    output: str | PathLike[str],
    *,
    authors: Sequence[str] | str = ("unknown",),
    license: str = "CC-BY-4.0",
    citation: tuple[str, str] = DEFAULT_CITATION,
    description: str | None = None,
    documentation: str | None = None,
    test_size: int = 64,
    seed: int = 0,
    overwrite: bool = False,
    sample: str | PathLike[str] | None = None,
) -> Path:
    """Write a ``.czann`` as a bioimage.io model package (a zip, format 0.5).

    Parameters
    ----------
    model
        The czann (segmentation, regression or classification; 2-D or 3-D), a built-in
        model's name (``"nuclei"``, as everywhere a model is asked for), or a model opened
        from either (``open_model``: the file it was read from is exported).
    output
        The package ``.zip`` (written to a temporary file and moved into place); an existing
        file is refused before any work unless ``overwrite``.
    authors, license, citation
        Package fields: ``authors`` one name (``"Doe, Jane"``: never split) or several;
        ``citation`` is ``(text, url or doi)``.
    description, documentation
        One-line description; the Markdown documentation (default: generated from the model).
    test_size
        Spatial size of the test input of a model that takes any size (rounded to its step).
    sample
        A real image (any format scopeml reads) whose centre crop is the test input and the
        cover, as bioimage.io's FAIR checks ask (its first scene and time point, a 2-D model the
        middle plane of a stack; the model's channels; at least the test input's size).
        ``None``: smooth random pixels.
    seed, overwrite
        The seed of the random test input; replace an existing ``output``.

    Returns
    -------
    Path
        ``output``: a package bioimage.io's tools validate, that scopeml imports back.

    Notes
    -----
    Small images: bioimage.io requires an input's smallest size to exceed twice the output
    halo, so a model with ``MinOverlap`` 112 and step 16 (``nuclei``) declares ``min: 240``
    although its graph takes any multiple of 16. The package therefore also records the
    graph's own smallest input under ``config: scopeml: smallest_input``; scopeml (``segment
    -m package.zip``, ``model convert``) reads it back and pads an image under 240 px only to
    the step, so it gives the czann's result exactly (tested on 80×90). Other tools cannot
    match exactly within the spec: ``bioimageio.core`` refuses inputs under the declared
    minimum, so the image must be padded to it, and it pads the halo mirrored on every side
    before taking the percentile statistics. Its result then differs within the halo of the
    border, as it does for any image. Measured for the ``nuclei`` model before the current one
    (halo 56, ``min: 120``) against scopeml: an 80×90 image padded at the far end to 120
    with its 1st-percentile value (which normalises to 0, as scopeml's padding) has 1.4% of
    labels different, with zeros 2.0%, mirrored 21%; a 128×136 image, unpadded, 1.7%.
    Declaring a smaller halo to lower the minimum would misstate the model and give tile seams
    in tiled prediction.

    Examples
    --------
    >>> from scopeml.model.testing import tiny_czann
    >>> czann = tiny_czann()
    >>> export_bioimageio(czann, czann.with_suffix(".zip")).name
    'm.zip'
    """
    from scopeml.model.bioimageio.importer import check_model_output
    from scopeml.model.bioimageio.package import require_spec
    from scopeml.model.container import read_container
    from scopeml.model.registry import resolve_model

    authors = _author_names(authors, citation)
    opened = getattr(model, "path", None)  # an opened model: the container it was read from
    path = resolve_model(model if opened is None else opened)  # a built-in name too
    _refuse_unexportable(path)  # before the extra: a classifier cannot be exported with it either
    require_spec()
    from bioimageio.spec import ValidationContext, save_bioimageio_package
    from pydantic import ValidationError

    check_model_output(output, overwrite=overwrite, source=path)
    container = read_container(path)
    meta = container.metadata
    _refuse_container(container, path)
    output = Path(output)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        test_input, test_output = _test_tensors(path, container, test_size, seed, sample)
        np.save(root / "test_input.npy", test_input)
        if sample is not None:  # the real crop and its result, for people: sample tensors
            tifffile.imwrite(root / SAMPLE, test_input)
            tifffile.imwrite(root / SAMPLE_OUTPUT, test_output)
        np.save(root / "test_output.npy", test_output)
        (root / "weights.onnx").write_bytes(float32_io(container.onnx_bytes))
        _write_cover(root / "cover.png", test_input, test_output)
        (root / "README.md").write_text(
            documentation or _documentation(meta, path, dynamic=not container.graph.fixed_spatial)
        )
        name = meta.model_name or path.stem
        try:
            with ValidationContext(root=root, perform_io_checks=True, raise_errors=False):
                descr = _description(
                    container,
                    root,
                    name=name if len(name) >= 5 else f"{name} model",  # bioimage.io: 5 or more
                    authors=authors,
                    license=license,
                    citation=citation,
                    summary=description or _summary(meta, path),
                )
        except ValidationError as err:
            item = err.errors()[0]
            where = ".".join(str(part) for part in item["loc"])
            raise InvalidRequestError(
                f"bioimage.io does not accept the description: {where}: {item['msg']}", path=path
            ) from err
        if _is_invalid(descr):
            raise InvalidRequestError(
                f"bioimage.io does not accept the description: {_first_error(descr)}", path=path
            )
        with atomic_write(output, overwrite=overwrite) as partial:
            save_bioimageio_package(descr, output_path=partial)
            restamp(partial)
    return output


def restamp(package: Path) -> None:
    """Rewrite a zip with every member at one fixed time (:func:`~scopeml.model.safezip.write_zip`),
    so the same model and options give the same bytes: ``bioimageio.spec`` stamps ``rdf.yaml``
    with the time of writing (the other members with 1980), so two exports differed."""
    import io
    import zipfile

    from scopeml.model.safezip import write_zip

    with zipfile.ZipFile(package) as archive:  # our own file, just written
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    buffer = io.BytesIO()
    write_zip(buffer, members)
    package.write_bytes(buffer.getvalue())


def float32_io(onnx_bytes: bytes) -> bytes:
    """The graph with float16 inputs and outputs cast from and to float32, as the package
    declares its tensors (scopeml casts them itself; a package of the bare float16 graph was
    refused by every other runtime: "expected: (tensor(float16))"); unchanged otherwise."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_model_from_string(onnx_bytes)
    graph, half = model.graph, TensorProto.FLOAT16
    weights = {t.name for t in graph.initializer}
    casts_in, casts_out = [], []
    for value in graph.input:
        if value.name not in weights and value.type.tensor_type.elem_type == half:
            inner = f"{value.name}_float16"
            _rename(graph, value.name, inner)
            casts_in.append(helper.make_node("Cast", [value.name], [inner], to=half))
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    for value in graph.output:
        if value.type.tensor_type.elem_type == half:
            inner = f"{value.name}_float16"
            _rename(graph, value.name, inner)
            casts_out.append(helper.make_node("Cast", [inner], [value.name], to=TensorProto.FLOAT))
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    if not casts_in and not casts_out:
        return onnx_bytes
    nodes = [*casts_in, *graph.node, *casts_out]
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString()


def _rename(graph: Any, old: str, new: str) -> None:
    """Every use and making of tensor ``old`` in the graph's nodes, as ``new``, in the
    subgraphs (If, Loop, Scan bodies) too, which may use an outer graph's tensor by name."""
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
        for attribute in node.attribute:
            if attribute.HasField("g"):
                _rename(attribute.g, old, new)
            for subgraph in attribute.graphs:
                _rename(subgraph, old, new)


def _refuse_unexportable(path: Path) -> None:
    """A package already, or a scopeml pixel or object classifier (a bioimage.io package holds
    a graph), is refused naming why, before any work, as ``model convert`` refuses one."""
    from scopeml.model.registry import format_of, model_formats, not_a_model

    if path.suffix.lower() == ".onnx":  # "not a valid zip archive" said less
        raise InvalidRequestError(not_a_model(path, model_formats()), path=path)
    kind = format_of(path)  # a file of no known kind: said as segment says it
    if kind == "bioimageio":
        raise InvalidRequestError(
            "is a bioimage.io package already: export the czann it came from, or make one "
            "with scopeml model convert PACKAGE -o MODEL.czann",
            path=path,
        )
    if kind in ("pixel-classifier", "object-classifier"):
        raise IncompatibleModelError(
            f"a scopeml {kind.replace('-', ' ')} holds a random forest, not an ONNX graph; a "
            "bioimage.io package holds a graph, so it cannot be exported (scopeml uses it as "
            "it is)",
            path=path,
        )


def _refuse_container(container: Any, path: Path) -> None:
    """A legacy container (convert it first), repeated class names, a batch fixed above 1 or
    an ObjectDetection model (no bioimage.io output description here) is refused naming why."""
    from scopeml.model.metadata import repeated_classes

    if container.legacy:
        raise IncompatibleModelError(
            "legacy czseg/czmodel containers are exported after conversion to czann: scopeml "
            f"model convert {path.name} -o {path.stem}.czann",
            path=path,
        )
    repeated = repeated_classes(container.metadata)
    if repeated:  # the package's output channels are named by them
        raise InvalidContainerError(
            f"class names repeat: {', '.join(repeated)}; a package names its outputs by them: "
            "make them unique in the container's model.json (Classes) first",
            path=path,
        )
    batch = container.graph.batch
    if batch is not None and batch != 1:  # bioimage.io's batch axis is free or 1
        raise IncompatibleModelError(
            f"the graph's batch is fixed at {batch}; a bioimage.io package takes a free batch "
            "or 1: export the graph with a dynamic batch (or batch 1) first",
            path=path,
        )
    if container.metadata.model_type.value == "ObjectDetection":
        raise IncompatibleModelError(
            "ObjectDetection models have no bioimage.io output description in scopeml yet",
            path=path,
        )


def _summary(meta: Any, path: Path) -> str:
    return f"{meta.model_type.value} model {meta.model_name or path.stem}, exported by scopeml"


def _documentation(meta: Any, path: Path, *, dynamic: bool = True) -> str:
    classes = ", ".join(meta.classes or ()) or "-"
    overlap = list(meta.min_overlap) if meta.min_overlap else "none"
    lines = [
        f"# {meta.model_name or path.stem}\n",
        f"A {meta.model_type.value} model exported by scopeml from `{path.name}` (czann).\n",
        f"## Intended use and output\n\n{_intended_use(meta)}\n",
        "## Tensors\n",
        f"- input: channels last, shape `{list(meta.input_shape)}` (spatial…, channels)",
        f"- output channels: {classes}",
        f"- halo (MinOverlap): {overlap}",
        f"- normalisation: {meta.normalize or 'raw values as float32'}\n",
    ]
    halo = max(meta.min_overlap or (0,))
    if meta.model_type.is_pixelwise and halo > 0:
        lines.append(
            "## Border handling\n\n"
            f"scopeml runs large images in tiles that overlap by the halo ({halo} px) and runs "
            "the tiles at the image border unpadded. Tools that pad the image by the halo "
            "(bioimage.io's tiled prediction) give somewhat different outputs within "
            f"{halo} px of the image border; inside that band the results agree"
            f"{_padded_statistics(meta.normalize)}.\n"
        )
    if meta.model_type.is_pixelwise and halo > 0 and dynamic:
        lines.append(
            "## Small images\n\n"
            "bioimage.io asks for inputs larger than twice the halo; the graph itself takes any "
            "multiple of its step, which `config: scopeml: smallest_input` records and scopeml "
            "pads a smaller image to, as it runs the czann. Other tools need such an image "
            "padded to the declared minimum: at the far end, with the value the normalisation "
            "maps to 0 (for percentile normalisation the low percentile), comes closest to "
            "scopeml's result.\n"
        )
    return "\n".join(lines)


def _padded_statistics(normalize: str | None) -> str:
    """The caveat for a normalisation computed from the image: ``bioimageio.core`` (0.11)
    pads the image by the halo before its preprocessing, so the padding enters the
    statistics and shifts every output a little (measured for ``nuclei`` on stardist's
    ``img2d.tif``: scores up to 0.034 apart inside the band, 0.08 % of its labels)."""
    if not normalize or not normalize.startswith(("percentile", "meanstd")):
        return ""
    what = "percentiles" if normalize.startswith("percentile") else "mean and standard deviation"
    return (
        f" when both take the same {what}. bioimageio.core 0.11 takes them over the image "
        "with its padding, so its outputs differ slightly inside the band too (scopeml's "
        "nuclei model on a real 512² image: scores by up to 0.034, 0.08 % of the labels "
        "inside the band); scopeml takes them over the image alone"
    )


def _intended_use(meta: Any) -> str:
    """What the model's output means, by model type, in one paragraph."""
    kind = meta.model_type
    classes = ", ".join(meta.classes or ()) or f"{meta.out_channels} channels"
    if not kind.is_pixelwise:
        return (
            f"Classifies a whole input image (resized to the input size): one score per class "
            f"({classes}); the class is the highest score."
        )
    if kind.value == "Regression":
        return (
            f"Image-to-image regression (e.g. denoising or virtual staining): the output "
            f"({classes}) is an image the size of the input, in the units the model was "
            "trained on."
        )
    return (
        f"Segmentation: one score per pixel and class ({classes}); a pixel belongs to "
        "the class with the highest score (scopeml writes class k as label k + 1)."
    )


def _test_tensors(
    path: Path, container: Any, test_size: int, seed: int, sample: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """A test input (NHWC float32: a crop of ``sample``, else smooth random pixels) and the
    model's output for it."""
    from scipy import ndimage

    meta, graph = container.metadata, container.graph
    spatial = graph.spatial_dims
    channels = meta.in_channels
    if meta.model_type.is_pixelwise:
        step = graph.tile_step
        fixed = graph.fixed_spatial
        halo = _halo(meta, spatial)
        sizes = fixed or tuple(
            -(-max(test_size, 2 * h + s) // s) * s for h, s in zip(halo, step, strict=True)
        )
    else:
        sizes = tuple(int(n) for n in meta.input_shape[:-1])
    if sample is not None:
        pixels = _sample_crop(sample, channels, sizes)
    else:
        noise = np.random.default_rng(seed).random((1, channels, *sizes))
        pixels = ndimage.gaussian_filter(noise, (0, 0) + (2.0,) * spatial).astype(np.float32) * 100
    batch = _normalized(pixels, meta.normalize)
    if meta.model_type.is_pixelwise:
        from scopeml.model.runtime import load_model

        result = load_model(container, providers=["CPUExecutionProvider"]).predict(batch)
        result_last = np.moveaxis(result, 1, -1)
    else:
        from scopeml.classify import ImageClassifier

        scores = ImageClassifier(path)._run(np.moveaxis(batch, 1, -1))
        result_last = np.asarray(scores, np.float32).reshape(1, -1)
    return np.ascontiguousarray(np.moveaxis(pixels, 1, -1)), result_last.astype(np.float32)


def _sample_crop(sample: Any, channels: int, sizes: tuple[int, ...]) -> np.ndarray:
    """The centre crop of ``sizes`` (``[Z] Y X``) of a real image as ``1 × C × …`` float32:
    its first scene and time point, and for a 2-D model the middle plane of a stack."""
    from scopeml.io import open_image

    with open_image(sample) as image:
        if image.sizes["C"] != channels:
            raise InvalidRequestError(
                f"the sample has {image.sizes['C']} channels; the model takes {channels}",
                path=image.path,
            )
        axes = "ZYX"[-len(sizes) :]
        region: dict[str, Any] = {"S": 0, "T": 0, "Z": image.sizes["Z"] // 2}
        for axis, size in zip(axes, sizes, strict=True):
            if image.sizes[axis] < size:
                raise InvalidRequestError(
                    f"the sample is {image.sizes[axis]} px along {axis}; the test input "
                    f"needs {size} (a larger image, or a smaller test size)",
                    path=image.path,
                )
            start = (image.sizes[axis] - size) // 2
            region[axis] = slice(start, start + size)
        pixels = image.read(**region)[0, 0].astype(np.float32)  # C × Z × Y × X
    if not np.isfinite(pixels).all():
        raise InvalidRequestError("the sample's crop holds NaN or infinite pixels", path=sample)
    return (pixels if len(sizes) == 3 else pixels[:, 0])[None]


def _normalized(pixels: np.ndarray, policy: str | None) -> np.ndarray:
    """The test input as the model sees it: the policy's statistics over the test image
    (bioimage.io computes them per sample, which is the whole test image)."""
    from scopeml.tiling.normalize import parse_normalize

    kind, args = parse_normalize(policy)
    axes = tuple(range(2, pixels.ndim))
    if kind == "none":
        return pixels
    if kind == "meanstd":
        mean = pixels.mean(axis=axes, keepdims=True)
        return (pixels - mean) / (pixels.std(axis=axes, keepdims=True) + 1e-6)
    low = np.percentile(pixels, args[0], axis=axes, keepdims=True)
    high = np.percentile(pixels, args[1], axis=axes, keepdims=True)
    return ((pixels - low) / (high - low + 1e-6)).astype(np.float32)


def _halo(meta: Any, spatial: int) -> tuple[int, ...]:
    return tuple(meta.min_overlap) if meta.min_overlap else (0,) * spatial


def _preprocessing(policy: str | None, spatial_ids: Sequence[str]) -> list[Any]:
    from bioimageio.spec.model import v0_5 as bio

    from scopeml.tiling.normalize import parse_normalize

    kind, args = parse_normalize(policy)
    axes = [bio.AxisId(a) for a in spatial_ids]
    if kind == "meanstd":
        kwargs = bio.ZeroMeanUnitVarianceKwargs(axes=axes, eps=1e-6)
        return [bio.ZeroMeanUnitVarianceDescr(kwargs=kwargs)]
    if kind == "percentile":
        kwargs = bio.ScaleRangeKwargs(
            axes=axes, min_percentile=args[0], max_percentile=args[1], eps=1e-6
        )
        return [bio.ScaleRangeDescr(kwargs=kwargs)]
    return []


def _author_names(authors: Sequence[str] | str, citation: Any = ("", "")) -> list[str]:
    """The package's authors (one name as a string is one author, not its letters), after
    checking them and the ``citation``, before any work.

    >>> _author_names("Doe, Jane"), _author_names(["A. Smith", "B. Jones"])
    (['Doe, Jane'], ['A. Smith', 'B. Jones'])
    """
    names = [authors] if isinstance(authors, str) else list(authors)
    if not names or not all(isinstance(name, str) and name.strip() for name in names):
        raise InvalidRequestError(f"authors are one or more names; got {authors!r}")
    if isinstance(citation, str) or len(citation) != 2:
        raise InvalidRequestError(f"citation is (text, url or doi); got {citation!r}")
    return names


def _description(
    container: Any,
    root: Path,
    *,
    name: str,
    authors: Sequence[str],
    license: str,
    citation: tuple[str, str],
    summary: str,
) -> Any:
    from bioimageio.spec.model import v0_5 as bio

    meta, graph = container.metadata, container.graph
    ids = _SPATIAL_IDS[graph.spatial_dims]
    halo = _halo(meta, graph.spatial_dims)
    inputs = _input_tensor(meta, graph, root, ids, halo)
    outputs = _output_tensor(meta, root, ids, halo, batch=graph.batch)
    return bio.ModelDescr(
        name=name,
        description=summary,
        authors=[bio.Author(name=author) for author in authors],
        cite=[_cite_entry(*citation)],
        license=license,
        documentation=bio.FileDescr(source=root / "README.md"),
        covers=[bio.FileDescr(source=root / "cover.png")],
        tags=["scopeml", "czann", meta.model_type.value],
        inputs=[inputs],
        outputs=[outputs],
        weights=bio.WeightsDescr(
            onnx=bio.OnnxWeightsDescr(source=root / "weights.onnx", opset_version=graph.opset)
        ),
        attachments=[],
        config={
            "scopeml": _scopeml_config(meta, graph),
            "bioimageio": {"reproducibility_tolerance": [_tolerance(root / "test_output.npy")]},
        },
    )


def _tolerance(test_output: Path) -> dict[str, float]:
    """How far a rerun may stray from the test output: bioimage.io's default 1e-3, less where
    the output is small (the spec allows at most 1% of its largest value: a regression model
    giving values below 0.1, or negative ones, was refused by the default)."""
    peak = float(np.load(test_output).max())
    if peak < 0:
        raise InvalidRequestError(
            f"bioimage.io cannot describe this model: its reproducibility tolerance must be at "
            f"most 1% of the test output's largest value, here {peak:.3g} (a model whose "
            "outputs are all negative cannot be packaged)"
        )
    # half the 1% the spec allows: its check multiplies in float32, ours in float64
    return {"absolute_tolerance": min(1e-3, 0.005 * peak), "relative_tolerance": 1e-3}


def _scopeml_config(meta: Any, graph: Any) -> dict[str, Any]:
    """``config: scopeml:``: the czann's type and id, its object size keys (what
    ``scale="auto"`` works from) under their package names, and the smallest input its graph
    takes per spatial axis (``smallest_input``), all read back on import.

    ``smallest_input`` is there because bioimage.io ties an input's smallest size to the
    output halo (``min > 2·halo``: 240 px for the nuclei model's 112 px halo) while the graph
    takes any multiple of its step (16 px). scopeml reads it back and pads an image under the
    declared minimum only to the step, as it runs the czann, so the package gives the czann's
    result on small images too. Padding to the declared minimum gives other values up to the
    receptive field away from the far border: the network's biases make the added zeros
    unlike its own zero padding."""
    from scopeml.model.bioimageio.importer import SIZE_KEYS

    config: dict[str, Any] = {"czann_type": meta.model_type.value, "czann_id": str(meta.model_id)}
    extra = meta.model_extra or {}
    for key, czann_key in SIZE_KEYS.items():
        if czann_key in extra:
            config[key] = extra[czann_key]
    if meta.model_type.is_pixelwise and not graph.fixed_spatial:
        config["smallest_input"] = [int(step) for step in graph.tile_step]
    return config


def _input_tensor(meta: Any, graph: Any, root: Path, ids: tuple[str, ...], halo: Any) -> Any:
    """The input tensor: batch (1 where the graph fixes it: bioimage.io's test runs a free
    batch axis at 2), spatial axes (fixed, or a size of ``min + n·step`` that covers the halo
    on both sides) and channels, with the recorded normalisation as preprocessing."""
    from bioimageio.spec.model import v0_5 as bio

    fixed = graph.fixed_spatial
    scales = axis_scales(meta, ids)
    space_in = []
    for index, axis in enumerate(ids):
        if fixed or not meta.model_type.is_pixelwise:
            size: Any = int(fixed[index] if fixed else meta.input_shape[index])
        else:
            step = graph.tile_step[index]
            size = bio.ParameterizedSize(min=-(-(2 * halo[index] + 1) // step) * step, step=step)
        space_in.append(bio.SpaceInputAxis(id=bio.AxisId(axis), size=size, **scales[axis]))
    channel_names = [f"channel{c}" for c in range(meta.in_channels)]
    return bio.InputTensorDescr(
        id=bio.TensorId("input"),
        axes=[
            bio.BatchAxis(size=graph.batch),
            *space_in,
            bio.ChannelAxis(channel_names=channel_names),
        ],
        test_tensor=bio.FileDescr(source=root / "test_input.npy"),
        sample_tensor=bio.FileDescr(source=root / SAMPLE) if (root / SAMPLE).exists() else None,
        preprocessing=_preprocessing(meta.normalize, ids),
    )


def _output_tensor(
    meta: Any, root: Path, ids: tuple[str, ...], halo: Any, batch: int | None = None
) -> Any:
    """The output tensor: per-pixel scores the size of the input (halo marked), or one score
    per class for a classifier; ``batch`` 1 for a graph that takes one image at a time."""
    from bioimageio.spec.model import v0_5 as bio

    classes = list(meta.classes or default_classes(meta.out_channels, meta.model_type))
    scales = axis_scales(meta, ids)
    space_out = [
        _space_output_axis(axis, int(halo[index]), scales[axis])
        for index, axis in enumerate(ids)
        if meta.model_type.is_pixelwise
    ]
    return bio.OutputTensorDescr(
        id=bio.TensorId("output"),
        axes=[bio.BatchAxis(size=batch), *space_out, bio.ChannelAxis(channel_names=classes)],
        test_tensor=bio.FileDescr(source=root / "test_output.npy"),
        sample_tensor=bio.FileDescr(source=root / SAMPLE_OUTPUT)
        if (root / SAMPLE_OUTPUT).exists()
        else None,
    )


def _space_output_axis(axis: str, halo: int, scale: dict[str, Any]) -> Any:
    """An output axis the size of the input's (and its pixel size, ``scale``), with its halo;
    bioimage.io wants a halo of at least 1, so a model without one (MinOverlap 0, e.g. a
    per-pixel regression) declares none."""
    from bioimageio.spec.model import v0_5 as bio

    size = bio.SizeReference(tensor_id=bio.TensorId("input"), axis_id=bio.AxisId(axis))
    if halo == 0:
        return bio.SpaceOutputAxis(id=bio.AxisId(axis), size=size, **scale)
    return bio.SpaceOutputAxisWithHalo(id=bio.AxisId(axis), size=size, halo=halo, **scale)


def axis_scales(meta: Any, ids: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per spatial axis, the pixel size a czann's ``Scaling`` (x, y[, z] in metres) gives, as
    bioimage.io axes carry it (``unit``, ``scale``); none without one (it was dropped, so a
    round trip lost it).

    >>> class Meta:
    ...     scaling = (2e-7, 3e-7)
    >>> axis_scales(Meta(), ("y", "x"))
    {'y': {'unit': 'micrometer', 'scale': 0.3}, 'x': {'unit': 'micrometer', 'scale': 0.2}}
    """
    scaling = list(getattr(meta, "scaling", None) or ())
    by_axis = dict(zip("xyz", scaling, strict=False))
    if not all(by_axis.get(axis, 0) > 0 for axis in ids):
        return {axis: {} for axis in ids}
    return {axis: {"unit": "micrometer", "scale": round(by_axis[axis] * 1e6, 12)} for axis in ids}


def _cite_entry(text: str, where: str) -> Any:
    """A citation by DOI (``10.…``) or by URL."""
    from bioimageio.spec.model import v0_5 as bio

    if where.startswith("10."):
        return bio.CiteEntry(text=text, doi=where)
    return bio.CiteEntry(text=text, url=where)


def _write_cover(path: Path, test_input: np.ndarray, test_output: np.ndarray) -> None:
    """Input and output side by side (first channel, middle plane), 8-bit PNG."""
    from PIL import Image as PILImage

    def plane(array: np.ndarray) -> np.ndarray:
        data = array[0, ..., 0]
        while data.ndim > 2:
            data = data[data.shape[0] // 2]
        if data.ndim < 2:
            data = np.tile(data.reshape(1, -1), (8, 1))
        low, high = float(data.min()), float(data.max())
        return np.uint8(np.clip((data - low) / (high - low + 1e-12), 0, 1) * 255)

    left, right = plane(test_input), plane(test_output)
    height = max(left.shape[0], right.shape[0])
    canvas = np.zeros((height, left.shape[1] + right.shape[1] + 4), np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] + 4 :] = right
    scale = max(1, 256 // height)
    PILImage.fromarray(np.kron(canvas, np.ones((scale, scale), np.uint8))).save(path)


def _is_invalid(descr: Any) -> bool:
    from bioimageio.spec import InvalidDescr

    return isinstance(descr, InvalidDescr)


def _first_error(descr: Any) -> str:
    summary = descr.validation_summary
    errors = [f"{'.'.join(map(str, e.loc))}: {e.msg}" for d in summary.details for e in d.errors]
    return errors[0] if errors else summary.status
