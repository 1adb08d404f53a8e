"""``scopeml model inspect|info|list|validate|convert|run|export-bioimageio``.

Library imports happen inside the commands so ``scopeml --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import typer

from scopeml.errors import IncompatibleModelError, InvalidImageError, InvalidRequestError
from scopeml.inputs import names_of

app = typer.Typer(
    help="Read, validate, convert and run models (.czann, .czseg, .czmodel, bioimage.io).",
    no_args_is_help=True,
)

#: Largest image (in elements) ``model run`` holds in memory; bigger ones go to ``scopeml segment``.
MAX_RUN_ELEMENTS = 2**28
#: Help of every ``--time-budget`` option (``segment``, ``model run``, ``model validate``).
TIME_BUDGET_HELP = (
    "Seconds one model run (one batch) may take before it is stopped (exit 2); "
    "default $SCOPEML_MODEL_TIME_BUDGET or 300; 0 for none."
)
#: Help of every ``--memory-limit`` option (``model validate``, ``model convert``).
MEMORY_LIMIT_HELP = (
    "Largest tensor (bytes) the graph may make for the probe tile (and for a package's test "
    "input); a run may allocate this plus 256 MiB. Default 1 GiB or $SCOPEML_MODEL_MEMORY_LIMIT."
)


@app.command("inspect")
def inspect(
    model: Path = typer.Argument(
        ..., help="Model to describe: any kind (scopeml model list), or a built-in name."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
) -> None:
    """Print a model's metadata, its graph (containers) and what the tiling engine will use."""
    from scopeml.model.describe import inspect_model

    description = inspect_model(model)
    if as_json:
        typer.echo(json.dumps(description, indent=2))
        return
    typer.echo(f"{description['path']}: {description['format']}")
    if "graph" not in description:  # a classifier: no container metadata or graph
        for key, value in description.items():
            if key == "engine":
                typer.echo(f"  {_engine_line(value)}")
            elif key not in ("path", "format"):
                typer.echo(f"  {key}: {value}")
        return
    for key, value in description["metadata"].items():
        typer.echo(f"  {key}: {value}")
    graph = description["graph"]
    ops = ", ".join(f"{op} {count}" for op, count in graph["ops"].items())
    typer.echo(
        f"graph: input {graph['input']} {graph['input_shape']}, output {graph['output']} "
        f"{graph['output_shape']}, opset {graph['opset']}, {graph['nodes']} nodes ({ops}), "
        f"{graph['bytes']} bytes"
    )
    typer.echo(_engine_line(description["engine"]))
    if description["license"]:
        typer.echo(f"license: {description['license']}")
    for key, value in description.get("package", {}).items():
        typer.echo(f"package {key}: {value}")
    for note in description["notes"]:
        typer.echo(f"note: {note}")


def _engine_line(engine: dict[str, Any] | None) -> str:
    """What the tiling engine will use, as one line of ``model inspect``."""
    if engine is None:
        return "engine: not a per-pixel model; cannot be tiled"
    tile = engine["tile_shape"] or "dynamic"
    return (
        f"engine: {engine['in_channels']} channels in, classes {engine['classes']}, "
        f"halo {engine['halo']}, tile step {engine['tile_step']}, tile shape {tile}"
    )


@app.command("info")
def info_alias(
    model: Path = typer.Argument(..., help="Model to describe (as for inspect)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
) -> None:
    """The same as inspect (the top-level scopeml info describes images)."""
    inspect(model, as_json)


@app.command("list")
def list_models(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
) -> None:
    """List the built-in models (open them by name) and the model kinds scopeml reads."""
    from scopeml.model.registry import BUILTIN_MODELS, model_formats

    builtins = {
        name: {"description": entry.description, "path": str(entry.path)}
        for name, entry in BUILTIN_MODELS.items()
    }
    kinds = {name: entry.description for name, entry in model_formats().items()}
    if as_json:
        typer.echo(json.dumps({"builtin": builtins, "formats": kinds}, indent=2))
        return
    typer.echo("built-in models (use the name wherever a model file is asked for):")
    for name, entry in builtins.items():
        typer.echo(f"  {name}: {entry['description']} ({entry['path']})")
    typer.echo("model kinds (recognised by content, not by suffix):")
    for name, description in kinds.items():
        typer.echo(f"  {name}: {description}")


@app.command("validate")
def validate(
    model: Path = typer.Argument(
        ...,
        help="Container to check, a bioimage.io package (zip, folder, rdf.yaml), or a built-in "
        "name (nuclei).",
    ),
    time_budget: float | None = typer.Option(
        None, "--time-budget", help=TIME_BUDGET_HELP, metavar="SECONDS"
    ),
    memory_limit: int | None = typer.Option(
        None, "--memory-limit", help=MEMORY_LIMIT_HELP, metavar="BYTES"
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object: valid, warnings, found (or error)."
    ),
) -> None:
    """Check a container (safe zip, valid metadata, metadata = graph, graph runs) or a package.

    A scopeml pixel or object classifier (scopeml's own zip, even named ``.czseg``) is checked
    by opening it (and running a pixel classifier on a zero tile) and named as what it is.
    A bioimage.io package is imported in memory (the importer's checks), run on a zero probe
    tile and on its own test input, which must give its test output (each in a child process
    under the time budget and memory limit); bioimageio.core's model test runs too when it is
    installed.

    The graph runs on a small zero probe tile (a classification model: a zero image of its
    input size, which must give one score per class) under the time budget, after shape
    inference has sized its tensors against the memory limit. Exit code 0 when valid
    (warnings may be printed), 2 with the reason when not.
    """
    from scopeml.errors import ScopeMLError
    from scopeml.model.validate import validate_model

    try:
        lines = validate_model(model, time_budget=time_budget, memory_limit=memory_limit)
    except (ScopeMLError, OSError) as err:
        if not as_json:
            raise
        problem = str(err) if isinstance(err, ScopeMLError) else f"{err.filename}: {err.strerror}"
        typer.echo(json.dumps({"valid": False, "error": problem}, indent=2))
        raise typer.Exit(2) from None
    if as_json:
        said = [line.removeprefix("warning: ") for line in lines]
        warnings = [w for w, line in zip(said, lines, strict=True) if w != line]
        found = [line for w, line in zip(said, lines, strict=True) if w == line]
        typer.echo(json.dumps({"valid": True, "warnings": warnings, "found": found}, indent=2))
        return
    for line in lines:
        typer.echo(line)


def check_suffix(output: Path, suffixes: tuple[str, ...], what: str) -> None:
    """Refuse an output name that says another kind of file (``-o out.tif`` got a zip)."""
    if output.suffix.lower() not in suffixes:
        named = ", ".join(suffixes[:-1]) + " or " * (len(suffixes) > 1) + suffixes[-1]
        got = repr(output.suffix) if output.suffix else "none"
        raise InvalidRequestError(
            f"{what} is written as {named}; name the output so (its suffix: {got})", path=output
        )


@app.command("convert")
def convert(
    source: Path = typer.Argument(
        ...,
        help="An .onnx graph, a PyTorch ExportedProgram (.pt2, from torch.export.save), a "
        "bioimage.io model package (.zip, folder, rdf.yaml/bioimageio.yaml), or a container "
        "(.czann ↔ legacy .czseg/.czmodel, rewrapped into the other kind).",
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Container to write (.czann; .czseg/.czmodel: legacy); .onnx: a container's "
        "graph as it is stored (channels-last).",
    ),
    classes: str | None = typer.Option(
        None,
        "--classes",
        help="Class names, comma-separated: bg,nuclei (bioimage.io, containers: from it; "
        "--type Regression: default 'intensity').",
    ),
    min_overlap: str | None = typer.Option(
        None,
        "--min-overlap",
        help="Halo per side in pixels: one value, or per axis ([Z,]Y,X); default 0 "
        "(containers: theirs).",
    ),
    name: str | None = typer.Option(None, "--name", help="Model name."),
    model_type: str | None = typer.Option(
        None,
        "--type",
        "--model-type",
        help="czann model type (default a semantic segmentation: SingleClass… for one or two "
        "classes, MultiClass… for more; containers: theirs); "
        "model_type= in Python.",
    ),
    scaling: str | None = typer.Option(
        None, "--scaling", help="Pixel extents x,y[,z] in metres, e.g. 2e-7,2e-7."
    ),
    preprocess: str = typer.Option(
        "", "--preprocess", help="Steps prepended to the graph: rgb2bgr,standardize,scale:255"
    ),
    spatial: str | None = typer.Option(
        None,
        "--spatial",
        help="Spatial input size: keep (default), dynamic, or fixed as HxW / DxHxW (legacy "
        "from a dynamic czann: default its InputShape).",
    ),
    normalize: str | None = typer.Option(
        None,
        "--normalize",
        help="Normalisation the model expects, recorded in the czann for scopeml: "
        "percentile:1,99.8, meanstd or none (ZEN/czmodel do not apply it; containers: theirs).",
    ),
    channels_first: bool = typer.Option(
        False, "--channels-first", help="The .onnx graph is N×C×Y×X (PyTorch); wrap it NHWC."
    ),
    channels_last: bool = typer.Option(
        False,
        "--channels-last",
        help="The .onnx graph is N×Y×X×C even though its fixed sizes look channels-first "
        "(a thin first axis, many channels), which is otherwise refused.",
    ),
    legacy: bool = typer.Option(
        False,
        "--legacy",
        help="Write a legacy .czseg/.czmodel (implied by those suffixes for a container source).",
    ),
    license_file: Path | None = typer.Option(None, "--license", help="License file to include."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    time_budget: float | None = typer.Option(
        None, "--time-budget", help=f"A package's check runs: {TIME_BUDGET_HELP}", metavar="SECONDS"
    ),
    memory_limit: int | None = typer.Option(
        None, "--memory-limit", help=f"A package's check runs: {MEMORY_LIMIT_HELP}", metavar="BYTES"
    ),
) -> None:
    """Wrap a trained model into a czann (or legacy) container, or rewrap a container; import
    a bioimage.io package.

    A .czann becomes a legacy .czseg/.czmodel and back with its graph unchanged (same
    predictions), keeping classes, overlap, name, type and Id where the target holds them; what
    it cannot hold (a czann's normalisation, above all) is named in a warning.
    """
    from scopeml.model.bioimageio.package import is_package
    from scopeml.model.convert import convert_onnx
    from scopeml.model.metadata import ModelType

    graph_only = {"--preprocess": preprocess, "--channels-first": channels_first,
                  "--channels-last": channels_last, "--license": license_file}  # fmt: skip
    given = {"--classes": classes, "--min-overlap": min_overlap, "--name": name,
             "--type": model_type, "--scaling": scaling, "--spatial": spatial,
             "--normalize": normalize, "--legacy": legacy}  # fmt: skip
    if _check_output(source, output, {**given, **graph_only}, overwrite):
        return  # a container's graph, written
    if is_package(source):
        rewrap = {"classes": classes, "overlap": min_overlap, "name": name, "scaling": scaling,
                  "spatial": spatial, "normalize": normalize}  # fmt: skip
        limits = {"time_budget": time_budget, "memory_limit": memory_limit}
        return _convert_package(source, output, model_type, overwrite, legacy, rewrap,
                                graph_only, limits)  # fmt: skip
    if not source.exists():  # before asking for options it needs
        source = _builtin_or_missing(source)
    kind = _model_type(model_type) if model_type is not None else None
    overlap = _ints(min_overlap, "--min-overlap", ",") if min_overlap is not None else None
    class_names = names_of(classes)
    if normalize is not None:
        from scopeml.tiling.normalize import check_recordable

        check_recordable(normalize)  # a one-line error naming the policy
    for given in (source, license_file):
        if given is not None and output.resolve() == given.resolve():
            raise InvalidRequestError(f"the output would replace the input {given}", path=output)
    if channels_first and channels_last:
        raise InvalidRequestError("give --channels-first or --channels-last, not both")
    if _container_format(source) is not None:
        _convert_container(
            source, output, legacy=legacy, classes=class_names, overlap=overlap, name=name,
            model_type=kind, scaling=scaling, spatial=spatial, normalize=normalize,
            other=graph_only, overwrite=overwrite,
        )  # fmt: skip
        return
    graph = _load_source(source, channels_first, channels_last)  # not a graph: said first
    if class_names is None and kind is not ModelType.REGRESSION:
        raise typer.BadParameter(
            "give the class names, one per output channel (a --type Regression model needs none)",
            param_hint="--classes",
        )
    overlap = overlap or [0]
    path = convert_onnx(
        graph,
        output,
        classes=class_names,
        min_overlap=overlap[0] if len(overlap) == 1 else overlap,
        model_type=kind,  # None: a semantic segmentation by the class count
        name=name,
        scaling=_floats(scaling, "--scaling") if scaling else None,
        preprocessing=preprocess,
        spatial=_spatial(spatial or "keep"),
        legacy=legacy,
        license_file=license_file,
        channels_last=True,  # checked (or forced) on the source in _load_source
        normalize=normalize,
        overwrite=overwrite,
    )
    _say_wrapped(path)


def _say_wrapped(path: Path) -> None:
    """``wrote PATH``, after what ``model validate`` finds of a halo too small for the graph
    (the nuclei graph wrapped with MinOverlap 0 found 182 objects for 122, with seams, and only
    validate said so, with the MinOverlap to give)."""
    import warnings

    from scopeml.errors import find_stack_level
    from scopeml.model.validate import halo_warnings

    for line in halo_warnings(path, time_budget=None, memory_limit=None):
        if not line.startswith("the halo was not checked"):
            warnings.warn(f"{path.name}: {line}", UserWarning, stacklevel=find_stack_level())
    typer.echo(f"wrote {path}")


def _check_output(source: Path, output: Path, given: dict[str, Any], overwrite: bool) -> bool:
    """Refuse, before any work, an output ``model convert`` does not write (named for what it
    is: ``-o x.zip`` for the command that writes packages); ``-o x.onnx`` writes a container's
    ONNX graph as it is stored (channels-last, as czann graphs are): True when written."""
    from scopeml.io.replace import atomic_write
    from scopeml.model.bioimageio.importer import check_model_output
    from scopeml.model.container import read_container

    if str(source).startswith(("http:/", "https:/")):
        raise InvalidRequestError(f"{source} is a URL; scopeml converts files, never downloads")
    check_model_output(output, overwrite=overwrite, source=source)
    suffix = output.suffix.lower()
    if suffix == ".zip":
        raise InvalidRequestError(
            "bioimage.io packages are written by scopeml model export-bioimageio", path=output
        )
    if suffix != ".onnx":
        check_suffix(output, (".czann", ".czseg", ".czmodel"), "a container")
        return False
    if not source.exists():
        source = _builtin_or_missing(source)
    if _container_format(source) is None:
        raise InvalidRequestError(
            "an .onnx output is a container's graph, written as it is stored; convert this "
            "source to a .czann first",
            path=source,
        )
    named = [option for option, value in given.items() if value]
    if named:
        raise InvalidRequestError(
            f"{', '.join(named)} changes a container; an .onnx output is the graph as stored "
            "(convert to a container with them first)",
            path=output,
        )
    container = read_container(source)
    with atomic_write(output, overwrite=overwrite) as temp:
        temp.write_bytes(container.onnx_bytes)
    info = container.graph
    from scopeml.model.describe import shown_shape

    dims = "×".join(map(str, [info.batch or "N", *shown_shape(info.input_shape)]))
    typer.echo(
        f"wrote {output}: the graph as {source.name} stores it, channels-last (N×[Z×]Y×X×C; "
        f"input {info.input_name!r} {dims})"
    )
    policy = getattr(container.metadata, "normalize", None)
    if policy not in (None, "none"):
        typer.echo(f"note: the model expects {policy} normalisation, which the graph itself "
                   "does not apply (scopeml does, from the container)")  # fmt: skip
    return True


def _builtin_or_missing(source: Path) -> Path:
    """A built-in model's container, by name; else the missing file, said as every command
    says one."""
    from scopeml.model.registry import BUILTIN_MODELS

    if str(source) not in BUILTIN_MODELS:
        raise FileNotFoundError(2, "No such file or directory", str(source))
    return BUILTIN_MODELS[str(source)].path


def _model_type(text: str) -> Any:
    from scopeml.model.metadata import ModelType

    try:
        return ModelType(text)
    except ValueError as err:
        known = ", ".join(item.value for item in ModelType)
        raise InvalidRequestError(f"unknown --type {text!r}; known: {known}") from err


def _container_format(source: Path) -> str | None:
    """``"czann"`` or ``"czmodel"`` (legacy) when ``source`` is a container, else ``None``;
    a scopeml classifier (not a graph) is refused naming what it is, and a folder that is no
    package as ``model info`` refuses it (it was asked for --classes)."""
    from scopeml.model.registry import format_of
    from scopeml.model.validate import refuse_folder

    refuse_folder(source)

    try:
        kind = format_of(source)
    except Exception:  # not a model file: read as a graph below, which names the problem
        if source.suffix.lower() in (".czann", ".czseg", ".czmodel", ".zip"):
            raise  # named a container or package: a damaged one says what is wrong with it
        return None
    if kind in ("pixel-classifier", "object-classifier"):
        raise InvalidRequestError(
            f"a scopeml {kind.replace('-', ' ')} holds a random forest, not a graph; no model "
            "format holds one (ONNX, czann, ZEN's czseg, bioimage.io): scopeml uses it as it is",
            path=source,
        )
    return kind if kind in ("czann", "czmodel") else None


def _convert_package(
    source: Path,
    output: Path,
    model_type: str | None,
    overwrite: bool,
    legacy: bool,
    rewrap: dict[str, Any],
    graph_only: dict[str, Any],
    limits: dict[str, Any],
) -> None:
    """``model convert`` of a bioimage.io package: imported as a czann (its check runs under
    ``limits``), which the container options then rewrap (a legacy container, other classes,
    name, overlap…) as they rewrap a czann given as the source, never ignored."""
    import tempfile

    from scopeml.errors import ScopeMLError
    from scopeml.model.bioimageio import import_bioimageio

    _refuse_graph_options(graph_only, source, "a package source; the package's steps are")
    legacy_suffix = output.suffix.lower() in (".czseg", ".czmodel")
    if legacy and not legacy_suffix:  # refused before the import, as for a container source
        raise InvalidRequestError("--legacy writes a .czseg/.czmodel", path=output)
    if not legacy_suffix and all(value is None for value in rewrap.values()):
        written = import_bioimageio(
            source, output, model_type=model_type, overwrite=overwrite, **limits
        )
        return typer.echo(f"wrote {written}")
    overlap = rewrap["overlap"]
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")  # said of the package, not the file imported
        czann = Path(folder) / f"{source.stem}.czann"
        try:
            import_bioimageio(source, czann, model_type=model_type, **limits)
            _convert_container(
                czann, output, legacy=legacy_suffix, classes=names_of(rewrap["classes"]),
                overlap=_ints(overlap, "--min-overlap", ",") if overlap is not None else None,
                name=rewrap["name"], model_type=None, scaling=rewrap["scaling"],
                spatial=rewrap["spatial"], normalize=rewrap["normalize"], other={},
                overwrite=overwrite,
            )  # fmt: skip
        except ScopeMLError as err:
            if err.path != str(czann):
                raise
            raise type(err)(err.problem.replace(czann.name, source.name), path=source) from None
    for warning in said:
        text = str(warning.message).replace(str(czann), str(source))
        warnings.warn(text.replace(czann.name, source.name), warning.category, stacklevel=2)


def _refuse_graph_options(given: dict[str, Any], source: Path, what: str) -> None:
    """Refuse the options that apply to a graph alone, given with ``what`` is kept as it is."""
    ignored = [option for option, value in given.items() if value]
    if ignored:
        raise InvalidRequestError(
            f"{', '.join(ignored)} applies to a graph, not to {what} kept as it is", path=source
        )


def _convert_container(
    source: Path,
    output: Path,
    *,
    legacy: bool,
    classes: Sequence[str] | None,
    overlap: list[int] | None,
    name: str | None,
    model_type: Any,
    scaling: str | None,
    spatial: str | None,
    normalize: str | None,
    other: dict[str, Any],
    overwrite: bool,
) -> None:
    """``model convert`` of a .czann/.czseg/.czmodel: rewrap it (see ``convert_container``)."""
    from scopeml.model.container import read_container
    from scopeml.model.convert import convert_container

    _refuse_graph_options(other, source, "a container source; the graph is")
    suffix = output.suffix.lower()
    legacy = legacy or suffix in (".czseg", ".czmodel")
    if legacy and suffix == ".czann":
        raise InvalidRequestError(
            "--legacy writes a .czseg/.czmodel; the output is named .czann", path=output
        )
    path = convert_container(
        source,
        output,
        legacy=legacy,
        classes=classes,
        min_overlap=(overlap[0] if len(overlap) == 1 else overlap) if overlap else None,
        model_type=model_type,
        name=name,
        scaling=_floats(scaling, "--scaling") if scaling else None,
        spatial=_spatial(spatial) if spatial is not None else None,
        normalize=normalize,
        overwrite=overwrite,
    )
    container = read_container(path)
    fixed = container.graph.fixed_spatial
    size = "×".join(map(str, fixed)) if fixed else "dynamic"
    kind = container.format  # a legacy container: czseg or czmodel, as it is named
    if container.legacy and path.suffix.lower() == ".czmodel":
        kind = "czmodel"
    typer.echo(f"wrote {path} ({kind}, input {size})")
    if fixed and spatial is None and not container.legacy and _container_format(source) != "czann":
        typer.echo(
            f"note: the legacy container's fixed {size} input is kept; if its graph takes other "
            "sizes, convert with --spatial dynamic: segment then reads larger tiles, faster"
        )


def _load_source(source: Path, channels_first: bool, channels_last: bool = False) -> Any:
    """The source as a channels-last ONNX graph; a fixed input that looks channels-first and was
    not declared either way is refused, naming the source file."""
    from scopeml.model.container import load_onnx
    from scopeml.model.convert import check_channels_last
    from scopeml.model.graph import to_channels_last

    suffix = source.suffix.lower()
    if suffix == ".pt2":
        graph = _export_program(source)
        channels_first = True
    elif suffix in (".pt", ".pth", ".pkl", ".ckpt"):
        raise InvalidRequestError(
            "pickled PyTorch files are not loaded (unpickling can run code); save the model "
            "with torch.export.save(...) as .pt2, or export ONNX",
            path=source,
        )
    else:
        graph = load_onnx(source.read_bytes(), path=source)
        if not (channels_first or channels_last):
            check_channels_last(graph, path=source)
    if channels_first:
        try:
            graph = to_channels_last(graph)
        except ValueError as err:
            raise InvalidRequestError(str(err), path=source) from err
    return graph


def _export_program(source: Path) -> Any:
    """ONNX from a ``torch.export`` ExportedProgram (a JSON graph and raw weights, no pickle)."""
    import warnings

    import torch

    from scopeml.model.container import load_onnx

    try:
        program = torch.export.load(str(source))
    except Exception as err:  # torch raises assorted types for a bad archive
        raise InvalidRequestError(f"not a torch.export program ({err})", path=source) from err
    try:
        with warnings.catch_warnings(), _without_torchvision_notes():
            warnings.simplefilter("ignore")
            exported = torch.onnx.export(program, dynamo=True, verbose=False)
    except Exception as err:  # the exporter raises many types for unsupported programs
        raise InvalidRequestError(
            f"PyTorch could not export it to ONNX: {err}", path=source
        ) from err
    return load_onnx(exported.model_proto.SerializeToString(), path=source)


#: The torch logger that notes, at WARNING on every dynamo export, each torchvision operator it
#: skips because torchvision is not installed: of no use to a model that does not use them.
TORCH_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"


@contextlib.contextmanager
def _without_torchvision_notes() -> Iterator[None]:
    """Drop the exporter's "torchvision is not installed. Skipping torchvision::nms" lines
    (four on every ``model convert x.pt2``) while exporting; its other messages pass."""
    import logging

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("torchvision is not installed")

    logger = logging.getLogger(TORCH_REGISTRATION_LOGGER)
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _ints(text: str, option: str, sep: str) -> list[int]:
    try:
        values = [int(item) for item in text.lower().split(sep)]
    except ValueError as err:
        raise InvalidRequestError(f"{option} needs integers, got {text!r}") from err
    if any(value < 0 for value in values):
        raise InvalidRequestError(f"{option} needs values >= 0, got {text!r}")
    return values


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(item) for item in text.split(",")]
    except ValueError as err:
        raise InvalidRequestError(f"{option} needs numbers, got {text!r}") from err


def _spatial(text: str) -> Any:
    if text in ("keep", "dynamic"):
        return text
    sizes = _ints(text, "--spatial", "x")
    if any(size < 1 for size in sizes):
        raise InvalidRequestError(f"--spatial sizes must be >= 1, got {text!r}")
    return tuple(sizes)


@app.command("run")
def run(
    model: Path = typer.Argument(
        ..., help="Model to run: a container, a pixel classifier, or a built-in name."
    ),
    image: Path = typer.Argument(..., help="A small image: .tif/.tiff, .png/.jpg or .npy."),
    output: Path = typer.Option(..., "--output", "-o", help="Result: .npy or .tif/.tiff."),
    labels: bool = typer.Option(
        False, "--labels", help="Write labels (class k as k + 1) instead of probabilities."
    ),
    time_budget: float | None = typer.Option(
        None, "--time-budget", help=TIME_BUDGET_HELP, metavar="SECONDS"
    ),
    scale: str | None = typer.Option(
        None, help="As segment --scale: a factor, or auto (the default for nuclei)."
    ),
    channels: str | None = typer.Option(
        None, help="Image channels fed to the model, by name (TIFF) or index, e.g. 0,2."
    ),
    axes: str | None = typer.Option(
        None,
        "--axes",
        help="The image's axes, one letter of T,C,Z,Y,X per axis in its order, e.g. ZYX: a "
        "plain multi-page TIFF is read as a Z stack unless told; a .npy's or PNG's axes are "
        "guessed from its shape unless told.",
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
) -> None:
    """Run a model on a small image held in memory (big images: scopeml segment).

    What ``segment`` writes, at the same scale (the model's default: auto for nuclei), from
    the same tiles and the model's recorded normalisation (:func:`scopeml.predict_region`):
    probabilities [T×]K×[Z×]Y×X, labels [T×][Z×]Y×X (class k as k + 1), a Regression model's
    image [T×]1×[Z×]Y×X. A TIFF is read as ``segment`` reads it (its axes, channel names,
    ``--axes``), so a 2-D model runs on each plane of a Z stack or time series; a ``.npy``
    or PNG is ``[C×][Z×]Y×X`` or ``Y×X×C``, its extra axis planes for a 2-D model, unless
    ``--axes`` names its axes (``ZYX``: a stack, whatever ``--channels`` says).
    """
    from scopeml.api import predict_region
    from scopeml.cli.segment import parse_scale
    from scopeml.io.replace import check_output_file
    from scopeml.model.registry import open_model, resolve_model
    from scopeml.model.runtime import set_default_time_budget
    from scopeml.tiling.outputs import REGRESSION

    model = resolve_model(model)
    suffix = output.suffix.lower()
    if suffix not in (".npy", ".tif", ".tiff"):
        raise InvalidRequestError(
            f"output must end in .npy, .tif or .tiff, got {suffix!r}", path=output
        )
    for given in (model, image):
        if output.resolve() == given.resolve():
            raise InvalidRequestError(f"the output would replace the input {given}", path=output)
    set_default_time_budget(time_budget)  # containers opened below take it up
    loaded = open_model(model)
    spec = getattr(loaded, "spec", None)
    if spec is None:
        raise IncompatibleModelError(
            f"a {type(loaded).__name__} classifies measured objects, not pixels; use "
            "`scopeml objects classify`",
            path=model,
        )
    check_output_file(output, overwrite=overwrite)  # before the image is read
    kind = "labels" if labels else "probabilities"
    if spec.extra.get("model_type") == REGRESSION:
        if labels:
            raise IncompatibleModelError(
                "a Regression model writes an image, not labels: run it without --labels",
                path=model,
            )
        kind = "image"
    chosen = None if channels is None else [c.strip() for c in channels.split(",")]
    with run_input(image, spec, chosen, axes) as small:  # a TIFF's file closed after
        result = predict_region(
            small, loaded, outputs=kind, scale=parse_scale(scale), channels=chosen
        )
    write_array(output, result, axes=result_axes(small, kind, result.ndim),
                channel_names=spec.classes, pixel_sizes=small.pixel_sizes)  # fmt: skip
    typer.echo(f"wrote {output} {result.shape} {result.dtype}")


def run_input(path: Path, spec: Any, channels: list[str] | None, axes: str | None) -> Any:
    """The image ``model run`` predicts: a TIFF opened as ``segment`` opens it (bounded
    before any pixel is read), other files read whole and their axes inferred."""
    import math

    from scopeml.io.image import Image

    if path.suffix.lower() in (".tif", ".tiff"):
        from scopeml.io import open_image

        opened = open_image(path, axes=axes)
        if math.prod(opened.shape) > MAX_RUN_ELEMENTS:
            opened.close()
            raise InvalidRequestError(
                f"image has {math.prod(opened.shape)} elements; `model run` holds at most "
                f"{MAX_RUN_ELEMENTS} in memory; use `scopeml segment`",
                path=path,
            )
        return opened
    pixels = read_small_image(path)
    if axes is not None:  # as sm.predict_region(array, axes=) reads it
        from scopeml.errors import ScopeMLError
        from scopeml.inputs import image_of_array

        try:
            return image_of_array(pixels, axes)
        except ScopeMLError as err:
            raise type(err)(err.problem, path=path) from None
    if channels is None:
        wanted = spec.in_channels
    elif pixels.ndim <= spec.spatial_dims:
        wanted = 1
    else:  # the image's own channel axis: the shorter of its first and last
        wanted = min(pixels.shape[0], pixels.shape[-1])
    czyx = arrange_channels(pixels, wanted, spec.spatial_dims, path)
    tczyx = czyx[None] if czyx.ndim == 4 else czyx[None, :, None]
    return Image(tczyx[None], path=str(path))


def read_small_image(path: Path) -> Any:
    """Read a whole small ``.npy`` (no pickle) or PNG/JPEG (scikit-image)."""
    import numpy as np

    suffix = path.suffix.lower()
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    try:
        if suffix == ".npy":
            pixels = np.load(path, allow_pickle=False, mmap_mode="r")
        else:
            from skimage import io as skio

            pixels = skio.imread(path)
    except (OSError, ValueError, SyntaxError) as err:
        raise InvalidImageError(f"cannot read the image ({err})", path=path) from err
    pixels = np.asarray(pixels)
    if pixels.size > MAX_RUN_ELEMENTS:
        raise InvalidRequestError(
            f"image has {pixels.size} elements; `model run` holds at most {MAX_RUN_ELEMENTS} "
            "in memory; use `scopeml segment`",
            path=path,
        )
    if pixels.dtype.kind not in "biuf":
        raise InvalidImageError(f"unsupported pixel type {pixels.dtype}", path=path)
    return pixels


def arrange_channels(pixels: Any, in_channels: int, spatial_dims: int, path: Path) -> Any:
    """Return ``C×[Z×]Y×X``, inferring where the channel axis is (first, last, or none).

    Examples
    --------
    >>> import numpy as np
    >>> arrange_channels(np.zeros((5, 6, 3)), 3, 2, Path("x.png")).shape
    (3, 5, 6)
    >>> arrange_channels(np.zeros((5, 6)), 1, 2, Path("x.png")).shape
    (1, 5, 6)
    >>> arrange_channels(np.zeros((4, 5, 6)), 1, 2, Path("x.npy")).shape  # four planes
    (1, 4, 5, 6)
    """
    import numpy as np

    squeezed = pixels
    while squeezed.ndim > spatial_dims + 1 and squeezed.shape[0] == 1:
        squeezed = squeezed[0]
    if squeezed.ndim == spatial_dims and in_channels == 1:
        return squeezed[np.newaxis]
    if squeezed.ndim == spatial_dims + 1:
        if squeezed.shape[0] == in_channels:
            return squeezed
        if squeezed.shape[-1] == in_channels:
            return np.moveaxis(squeezed, -1, 0)
        if spatial_dims == 2 and in_channels == 1 and squeezed.shape[-1] > 4:
            return squeezed[np.newaxis]  # Z×Y×X (not Y×X×colours): the model on each plane
    if squeezed.ndim == 4 and spatial_dims == 2 and squeezed.shape[0] == in_channels:
        return squeezed  # C×Z×Y×X
    raise IncompatibleModelError(
        f"image has shape {pixels.shape}; the model expects {in_channels} channel(s) and "
        f"{spatial_dims} spatial dims (choose channels with --channels)",
        path=path,
    )


def result_axes(image: Any, kind: str, ndim: int) -> str | None:
    """The axes of ``predict_region``'s result on ``image``: ``[T][C][Z]YX``, T and Z where the
    image has more than one, C but for labels; ``None`` should the rank say otherwise."""
    axes = "T" * (image.sizes["T"] > 1) + "C" * (kind != "labels") + "Z" * (image.sizes["Z"] > 1)
    return axes + "YX" if len(axes) + 2 == ndim else None


def write_array(
    path: Path,
    array: Any,
    *,
    axes: str | None = None,
    channel_names: Sequence[str] | None = None,
    pixel_sizes: dict[str, float] | None = None,
) -> None:
    """Write ``.npy``, or ``.tif`` as an OME-TIFF with its ``axes`` (``TCZYX`` order), so
    ``scopeml info`` and :func:`scopeml.io.open_image` read channels as channels, not colours
    or planes; ``channel_names`` name the C axis (the model's classes). Atomic either way."""
    import numpy as np

    from scopeml.io.replace import atomic_write

    if path.suffix.lower() != ".npy" and axes is not None:
        from scopeml.io.ometiff import write_ome_tiff

        named = "C" in axes and len(channel_names or ()) == array.shape[axes.index("C")]
        return write_ome_tiff(path, np.asarray(array), axes=axes, pixel_sizes=pixel_sizes,
                              channel_names=channel_names if named else None)  # fmt: skip
    with atomic_write(path) as temp:
        if path.suffix.lower() == ".npy":
            with open(temp, "wb") as stream:  # a file object: np.save adds no suffix
                np.save(stream, array, allow_pickle=False)
        else:
            import tifffile

            tifffile.imwrite(temp, array)


@app.command("export-bioimageio")
def export_bioimageio_command(
    model: Path = typer.Argument(..., help="The .czann to export, or a built-in model's name."),
    output: Path = typer.Option(..., "--output", "-o", help="The package to write (.zip)."),
    author: list[str] = typer.Option(["unknown"], "--author", help="An author (repeatable)."),
    license_id: str = typer.Option("CC-BY-4.0", "--license", help="SPDX license identifier."),
    cite: str | None = typer.Option(
        None, "--cite", help="Citation as 'TEXT|URL or DOI' (default: the czann format)."
    ),
    description: str | None = typer.Option(None, "--description", help="One-line description."),
    documentation: Path | None = typer.Option(
        None, "--documentation", help="Markdown documentation (default: generated)."
    ),
    sample: Path | None = typer.Option(
        None,
        "--sample",
        help="A real image whose centre crop becomes the test input and the cover (FAIR "
        "packages show real data; default: smooth random pixels).",
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing package file."),
) -> None:
    """Write a czann as a bioimage.io model package (format 0.5) with test tensors and a cover."""
    from scopeml.model.bioimageio import export_bioimageio
    from scopeml.model.bioimageio.export import DEFAULT_CITATION

    citation = DEFAULT_CITATION
    if cite is not None:
        text, _, where = cite.partition("|")
        if not text.strip() or not where.strip():
            raise typer.BadParameter("give 'TEXT|URL' or 'TEXT|DOI'", param_hint="--cite")
        citation = (text.strip(), where.strip())
    check_suffix(output, (".zip",), "a bioimage.io package")
    docs = documentation.read_text(encoding="utf-8") if documentation is not None else None
    path = export_bioimageio(
        model, output, authors=author, license=license_id, citation=citation,
        description=description, documentation=docs, overwrite=overwrite, sample=sample,
    )  # fmt: skip
    typer.echo(f"wrote {path}")
