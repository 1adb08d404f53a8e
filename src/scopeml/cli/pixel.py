"""``scopeml pixel train|features|info``: the random-forest pixel classifier.

Library imports happen inside the commands so ``scopeml --help`` stays fast. A trained model is a
``.czseg`` container that ``scopeml segment --model`` runs like any other model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from scopeml.errors import InvalidLabelsError, summarize
from scopeml.io.axes import AXES_HELP

#: Features listed by ``pixel info``, most important first.
INFO_TOP_FEATURES = 5
#: Classes whose labelled pixels ``pixel train`` lists (300 classes made a 300-item line).
SUMMARY_CLASSES = 10

app = typer.Typer(
    help="Train and inspect random-forest pixel classifiers (sparse labels → .czseg).",
    no_args_is_help=True,
)


@app.command("train")
def train(
    files: list[Path] = typer.Argument(
        ...,
        help="IMAGE LABELS [IMAGE LABELS …]: images (CZI, OME-TIFF, OME-Zarr, TIFF, PNG, …), each "
        "followed by its label image of the same Y×X (Z×Y×X): 0 unlabelled, 1..K classes. A time "
        "series trains on every time point with labels: its labels have the same T (T×Y×X).",
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write (.czseg)."),
    features: str = typer.Option(
        "basic25",
        help="basic25, basic33, 'family:sigma,sigma;…', or deep features: vgg19-64, vgg19-256, "
        "vgg19-256+basic25, NETWORK.onnx|.czann:LAYER,LAYER (see `features --list` and "
        "`features --list NETWORK`). A network up to 50 MiB is stored in the classifier.",
    ),
    classes: str | None = typer.Option(None, help="Comma-separated names of classes 1..K."),
    colors: str | None = typer.Option(None, help="Comma-separated #rrggbb per class."),
    n_estimators: int = typer.Option(100, min=1, max=10_000, help="Trees in the forest."),
    max_depth: int | None = typer.Option(None, min=1, help="Tree depth limit (none: unlimited)."),
    min_samples_leaf: int = typer.Option(
        1, min=1, help="Fewest labelled pixels a leaf of a tree holds (larger: smoother)."
    ),
    scene: int | None = typer.Option(None, help="Scene of multi-scene images (of every image)."),
    axes: str | None = typer.Option(
        None,
        "--axes",
        help=f"{AXES_HELP} Of every image (labels are Y×X, Z×Y×X or a time series' T×Y×X).",
    ),
    channels: str | None = typer.Option(
        None,
        help="Channels to train on, by name or index, e.g. DAPI or 0,2; give `segment` the same.",
    ),
    seed: int = typer.Option(0, help="Random seed of the forest."),
    jobs: int = typer.Option(
        -1, "--workers", "--jobs", help="Threads (-1: all cores), as workers= in Python."
    ),
    name: str = typer.Option("pixel classifier", help="Model name stored in the container."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing output that is not a pixel classifier."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train a pixel classifier from sparse labels and save it as a container.

    Images and label images are read block by block, only where there are labels. A time series
    (T×Y×X, T×C×Y×X, T×C×Z×Y×X…) is trained on all its time points that have labels, each
    time point's features apart; its labels have the same time points (napari's export, an
    OME-TIFF, names them; a plain T×Y×X TIFF of labels is read so for an image with one Z
    plane). An existing classifier at the output is replaced, and what changed is printed.
    """
    from contextlib import ExitStack

    from scopeml.errors import InvalidRequestError
    from scopeml.io import open_image
    from scopeml.pixel import train_classifier
    from scopeml.pixel._container import check_classifier_name
    from scopeml.pixel._labels import open_training_labels

    if len(files) % 2:
        raise InvalidRequestError(
            f"give images and label images in pairs (IMAGE LABELS …); got {len(files)} files"
        )
    for given in files:
        if output.resolve() == given.resolve():
            raise InvalidRequestError(f"the output would replace the input {given}", path=output)
    if output.is_dir():
        raise InvalidRequestError("is a folder; give a model file name (.czseg)", path=output)
    check_classifier_name(output)
    if jobs == 0 or jobs < -1:  # joblib's own refusal came from deep in the fit
        raise typer.BadParameter("give 1 or more threads, or -1 (all)", param_hint="--workers")
    previous = _previous(output, overwrite)
    feature_set = _parse_features_option(features)
    with ExitStack() as stack:
        images, labels, dims = [], [], set()
        for image_file, labels_file in zip(files[::2], files[1::2], strict=True):
            img = stack.enter_context(open_image(image_file, scene=scene, axes=axes))
            if channels is not None:
                img = img.select_channels(_split(channels) or [])
            lab = stack.enter_context(open_training_labels(labels_file, img.sizes))
            dims.add(_label_dims(lab, img, labels_file))
            images.append(img)
            labels.append(lab)
        if len(dims) > 1:
            raise InvalidLabelsError("mixes 2-D and 3-D label images; train one kind at a time")
        clf = train_classifier(
            images,
            labels,
            features=feature_set,
            classes=_split(classes),
            colors=_split(colors),
            n_estimators=n_estimators,
            max_depth=max_depth,
            min_samples_leaf=min_samples_leaf,
            spatial_dims=dims.pop(),
            n_jobs=jobs,
            seed=seed,
            name=name,
            progress=not quiet,  # tqdm bars on stderr: features, then trees
        )
    clf = _kept_classes(clf, previous, classes, colors)  # retrained: settings name its classes
    path = clf.save(output, overwrite=True)  # a pixel classifier, or --overwrite: _previous
    counts = summarize(
        (f"{c.name} {n}" for c, n in zip(clf.classes, clf.info["samples_per_class"], strict=True)),
        head=SUMMARY_CLASSES,
    )
    typer.echo(
        f"{path}: {len(clf.classes)} classes ({counts} labelled pixels), "
        f"{clf.forest.n_features} features, {clf.forest.n_trees} trees, halo {clf.features.halo}"
    )
    if previous is not None:
        typer.echo(_changes(path, previous, clf))


def _parse_features_option(spec: str):
    """The feature set of ``--features``, its network opened (VGG weights fetched); a problem
    with the option is reported as the option's, not as the image's."""
    from scopeml.errors import ScopeMLError
    from scopeml.features import DeepFeatures, parse_features

    try:
        fs = parse_features(spec)
        if isinstance(fs, DeepFeatures):
            fs.net  # noqa: B018 (opens the network: a wrong layer or file fails here)
    except ScopeMLError as err:
        if err.path is not None:  # a network file's own problem names the file
            raise
        raise type(err)(err.problem, path="--features") from err
    return fs


def _previous(output: Path, overwrite: bool):
    """What an existing ``output`` held: its metadata if it is a readable pixel classifier, a
    note saying what it was otherwise, ``None`` if there is none. A file that is not a pixel
    classifier is refused unless ``overwrite``."""
    from scopeml.errors import InvalidRequestError, ScopeMLError
    from scopeml.io.replace import check_not_special
    from scopeml.model.safezip import peek_json
    from scopeml.pixel import FORMAT, read_metadata

    if not output.exists():
        return None
    check_not_special(output)  # before reading it: a pipe would block
    try:
        return read_metadata(output)
    except ScopeMLError:
        pass
    try:
        meta = peek_json(output, "model.json")
    except (ScopeMLError, OSError, ValueError):
        meta = None
    if isinstance(meta, dict) and meta.get("Format") == FORMAT:
        return "an older or unreadable pixel classifier: nothing to compare"
    if overwrite:
        return "it was not a pixel classifier"
    raise InvalidRequestError(
        "exists and is not a pixel classifier; give another name, or --overwrite to replace it",
        path=output,
    )


def _kept_classes(clf: Any, previous: Any, classes: str | None, colors: str | None) -> Any:
    """``clf`` with the class names (and colours, but those of ``colors``) of the classifier
    it replaces, where ``classes`` are not given and it has as many: retrained without
    ``--classes``, a classifier's classes became "class 1, class 2" and analysis settings
    naming "nucleus" failed."""
    from scopeml.pixel._classifier import make_classes

    old = getattr(previous, "Classes", None)
    if classes is not None or not old or len(old) != len(clf.classes):
        return clf
    colors = _split(colors)
    names = [c.Name for c in old]
    if names != [c.name for c in clf.classes]:
        typer.echo(f"kept the class names of the classifier it replaces: {', '.join(names)} "
                   "(--classes gives others)", err=True)  # fmt: skip
    hues = [*(colors or []), *(c.Color for c in old[len(colors or []) :])]  # given ones first
    return clf.with_classes(make_classes(len(names), names, hues))


def _changes(path: Path, previous, clf) -> str:
    """``replaced PATH: labelled pixels A 92 → 282, …`` (and other settings that changed)."""
    if isinstance(previous, str):
        return f"replaced {path} ({previous})"
    before = previous.Training.get("samples_per_class") or []
    now = clf.info["samples_per_class"]
    old_names = [c.Name for c in previous.Classes]
    parts = []
    for k in range(max(len(before), len(now))):
        name = clf.classes[k].name if k < len(now) else old_names[k]
        if k < len(old_names) and k < len(now) and old_names[k] != name:
            name = f"{old_names[k]} → {name}"
        a = str(before[k]) if k < len(before) else "–"
        b = str(now[k]) if k < len(now) else "–"
        parts.append(f"{name} {a}" if a == b else f"{name} {a} → {b}")
    same = before == now and old_names == [c.name for c in clf.classes]
    listed = summarize(parts, head=SUMMARY_CLASSES)
    changes = [f"labelled pixels {'unchanged (' if same else ''}{listed}{')' * same}"]
    if previous.SpatialDims != clf.spec.spatial_dims:  # a Z stack, then planes of a time series
        changes.append(f"{previous.SpatialDims}-D → {clf.spec.spatial_dims}-D")
    old_features = previous.Features.get("name")
    if old_features != clf.features.name:
        changes.append(f"features {old_features} → {clf.features.name}")
    if previous.Forest.Trees != clf.forest.n_trees:
        changes.append(f"trees {previous.Forest.Trees} → {clf.forest.n_trees}")
    if previous.Training.get("channels") not in (None, clf.info.get("channels")):
        changes.append(
            f"channels {','.join(map(str, previous.Training['channels']))} → "
            f"{','.join(map(str, clf.info['channels']))}"
        )
    return f"replaced {path}: {'; '.join(changes)}"


@app.command("features")
def features(
    network: str | None = typer.Argument(
        None,
        metavar="NETWORK",
        help="An .onnx or .czann file (or nuclei, vgg19, vgg16): list the tensors it can tap.",
    ),
    list_: bool = typer.Option(
        False, "--list", help="List filter families and presets (with NETWORK: its tensors)."
    ),
    spec: str = typer.Option("basic25", "--features", help="Feature set whose names to print."),
    channels: int = typer.Option(1, min=1, max=1024, help="Number of image channels."),
    dims: int = typer.Option(2, min=2, max=3, help="Spatial dimensions (2 or 3)."),
) -> None:
    """Print the names of a feature set's features (or, with --list, what can be chosen; with
    NETWORK, the tensors of that network `--features NETWORK:TENSOR` can tap)."""
    from scopeml.features import FAMILIES, PRESETS, SIGMAS

    if network is None and list_ and _is_network(spec):  # `--features net.czann --list`
        network = spec
    if network is not None and _is_feature_spec(network):  # `features vgg19-64`: as --features
        network, spec, list_ = None, network, False
    if network is not None:
        _list_tensors(network)
        return
    if list_:
        typer.echo("families (outputs per channel in 2-D / 3-D):")
        for family, (n2, n3) in FAMILIES.items():
            typer.echo(f"  {family}  {n2} / {n3}")
        typer.echo(f"usual sigmas: {', '.join(f'{s:g}' for s in SIGMAS)}")
        typer.echo("presets:")
        for name, fs in PRESETS.items():
            groups: dict[str, list[str]] = {}
            for family, sigma in fs.filters:
                groups.setdefault(family, []).append(f"{sigma:g}")
            text = ";".join(f"{f}:{','.join(s)}" for f, s in groups.items())
            typer.echo(
                f"  {name}: {fs.n_per_channel(2)} / {fs.n_per_channel(3)} per channel, "
                f"halo {fs.halo}: {text}"
            )
        from scopeml.features import DEEP_PRESETS

        typer.echo("deep presets (add +basic25 for the filter bank too, @1,2,4 for scales):")
        for name, deep in DEEP_PRESETS.items():
            extra = f" → {deep['projection']} dims" if deep.get("projection") else ""
            typer.echo(
                f"  {name}: {deep['network']} {','.join(deep['layers'])}{extra}"
                f"{_weights_note(deep['network'], name)}"
            )
        typer.echo("a network's tensors (--features NETWORK:TENSOR): --list NETWORK.onnx|.czann")
        return
    fs = _parse_features_option(spec)
    for feature in fs.names(channels, dims):
        typer.echo(feature)
    typer.echo(f"# {fs.n_features(channels, dims)} features, halo {fs.halo}", err=True)


def _weights_note(arch: str, preset: str) -> str:
    """Whether a VGG preset's ImageNet weights are here, else whether they can be fetched on
    first use (an address is known: torchvision's table or ``SCOPEML_WEIGHTS_URL``)."""
    from scopeml.features._vgg import download_address_known, weights_present

    if weights_present(arch):
        return " [ImageNet weights: downloaded]"
    random = preset.replace(arch, f"{arch}-random", 1)
    fetched = (
        "fetched on first use"
        if download_address_known(arch)
        else "no download address known: install torchvision or set SCOPEML_WEIGHTS_URL"
    )
    return f" [needs ImageNet weights: not downloaded, {fetched}; {random} needs none]"


def _is_feature_spec(text: str) -> bool:
    """Whether ``features TEXT`` names a feature set (a preset, ``family:sigma``, a deep spec)
    rather than a network whose tensors to list."""
    from scopeml.features import FAMILIES, PRESETS
    from scopeml.features.deep import is_deep_spec

    if _is_network(text):
        return False
    family = text.replace(";", " ").split()[0].partition(":")[0] if text.strip() else ""
    return text.strip() in PRESETS or family in FAMILIES or is_deep_spec(text)


def _is_network(text: str) -> bool:
    from scopeml.features._network import BUILTIN
    from scopeml.model.registry import BUILTIN_MODELS

    return text in BUILTIN or text in BUILTIN_MODELS or Path(text).is_file()


def _list_tensors(network: str) -> None:
    """Print the 4-D tensors of ``network`` (name, op, maps×H×W at a 256² input)."""
    from scopeml.errors import InvalidRequestError
    from scopeml.features._network import BUILTIN, known_networks, list_tensors, resolve_network

    if network not in BUILTIN and not Path(resolve_network(network)).is_file():
        raise InvalidRequestError(
            f"no such network file; {known_networks()} (a feature set's names: --features SPEC)",
            path=network,
        )
    size = 256
    rows = list_tensors(network, size=size)
    shaped = any(shape for _, _, shape in rows)
    where = f"maps×H×W for a {size}×{size} input" if shaped else "shapes unknown"
    typer.echo(f"{network}: {len(rows)} tensors to tap with --features {network}:NAME ({where}):")
    width = max((len(name) for name, _, _ in rows), default=0)
    for name, op, shape in rows:
        text = "×".join(map(str, shape)) if shape else ""
        typer.echo(f"  {name:<{width}}  {op:<10} {text}".rstrip())


@app.command("info")
def info(model: Path = typer.Argument(..., help="Pixel-classifier container (.czseg).")) -> None:
    """Print a pixel classifier's metadata without loading its forest."""
    from scopeml.errors import InvalidContainerError, InvalidRequestError
    from scopeml.model.registry import BUILTIN_MODELS, check_kind
    from scopeml.pixel import read_metadata
    from scopeml.pixel._container import NOT_PIXEL

    if model.is_dir():  # a segment store, say ("Is a directory" was all it said)
        raise InvalidRequestError("is a folder, not a pixel classifier (.czseg)", path=model)
    if not model.exists() and str(model) in BUILTIN_MODELS:
        raise InvalidRequestError(f"the built-in {model} is a segmentation model, not a pixel "
                                  f"classifier: scopeml model inspect {model}")  # fmt: skip
    try:
        meta = read_metadata(model)
    except InvalidContainerError:  # a model of another kind: said by what it is
        check_kind(model, NOT_PIXEL, "a pixel classifier")
        raise
    typer.echo(f"{model}: {meta.Format} v{meta.FormatVersion} '{meta.Name}'")
    channels = f"{meta.InChannels} channel{'s' * (meta.InChannels != 1)}"
    typer.echo(f"  {channels}, {meta.SpatialDims}-D, halo {meta.Halo}")
    typer.echo(f"  features: {meta.Features.get('name')} ({len(meta.FeatureNames)})")
    if meta.Features.get("kind") == "deep":
        _network_info(meta.Features)
    if meta.Training.get("channels"):
        typer.echo(f"  trained on channels: {', '.join(map(str, meta.Training['channels']))}")
    if span := meta.Training.get("intensity_range"):  # validated when read
        low, high = span["percentiles"]
        ranges = ", ".join(f"{a:g}..{b:g}" for a, b in zip(span["low"], span["high"], strict=True))
        typer.echo(f"  trained on intensities: {ranges} ({low:g}..{high:g}th percentile of the "
                   "labelled blocks)")  # fmt: skip
    for c in meta.Classes:
        typer.echo(f"  class {c.Label}: {c.Name} {c.Color}")
    typer.echo(f"  forest: {meta.Forest.Trees} trees, {meta.Forest.Nodes} nodes")
    importances = meta.Training.get("feature_importances") or []
    if len(importances) == len(meta.FeatureNames):
        names = _named_features(meta.FeatureNames, meta.Training.get("channels"))
        ranked = sorted(zip(importances, names, strict=True), reverse=True)
        typer.echo("  most important features:")
        for value, feature in ranked[:INFO_TOP_FEATURES]:
            typer.echo(f"    {value:6.1%}  {feature}")


def _named_features(features: list[str], channels: list[str] | None) -> list[str]:
    """Feature names with the channels the classifier was trained on (``…[R]``, not
    ``…[C0]`` beside "trained on channels: R, G, B").

    >>> _named_features(["gaussian(sigma=1)[C0]", "gaussian(sigma=1)[C1][0]"], ["R", "G"])
    ['gaussian(sigma=1)[R]', 'gaussian(sigma=1)[G][0]']
    """
    if not channels:
        return features
    return [
        re.sub(r"\[C(\d+)\]", lambda m: f"[{channels[int(m[1])]}]"
               if int(m[1]) < len(channels) else m[0], name, count=1)
        for name in features
    ]  # fmt: skip


def _network_info(features: dict) -> None:
    """The feature network's path, hash and where it is looked for."""
    from scopeml.features._network import BUILTIN

    network, sha = str(features.get("network")), str(features.get("sha256") or "")
    layers = ", ".join(map(str, features.get("layers") or []))
    typer.echo(f"  feature network: {network} ({layers})")
    if network in BUILTIN:
        where = "builtin"
    elif features.get("embedded"):
        where = "embedded in the classifier"
    else:
        relative = features.get("network_relative")
        beside = f", {relative} relative to the classifier" if relative else ""
        where = f"not embedded: looked for at this path{beside}, or beside the classifier"
    typer.echo(f"    sha256 {sha or '(not recorded)'}, {where}")


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def _swapped_axes(labels: tuple[int, int], image: tuple[int, int]) -> str | None:
    """What to say where the labels' time points are the image's planes (T, Z counts): the
    napari widget's scribbles of a movie are TYX, and a plain multi-page TIFF movie is read
    as Z unless told (the labels' planes are read as the image's time points: no need)."""
    (t, z), (want_t, want_z) = labels, image
    if t > 1 and z == 1 and want_t == 1 and want_z == t:
        return (f"labels have {t} time points; the image is read as {t} Z planes: pass "
                "--axes TYX if they are time points")  # fmt: skip
    return None


def _label_dims(labels, image, path: Path) -> int:
    """Spatial dims of a label image (2 if it has one Z plane), after checking it matches the
    image (its time points too); its pixels are read later, block by block."""
    z, y, x = labels.spatial_shape
    spatial_shape = image.spatial_shape
    t, want = labels.sizes["T"], image.sizes["T"]
    swapped = _swapped_axes((t, z), (want, spatial_shape[0]))
    if swapped is not None and (y, x) == tuple(spatial_shape[1:]):
        raise InvalidLabelsError(swapped, path=path)
    if (z, y, x) != tuple(spatial_shape):
        planes, shape = spatial_shape[0], "×".join(map(str, spatial_shape))
        fix = (
            f": give a label stack of the image's {planes} planes, your labels on the planes "
            "you painted and 0 on the others"
            if z == 1 and planes > 1 and (y, x) == tuple(spatial_shape[1:])
            else ""
        )
        raise InvalidLabelsError(
            f"labels are Z×Y×X {z}×{y}×{x}; the image is {shape}{fix}", path=path
        )
    if t != want:
        raise InvalidLabelsError(
            f"labels have {t} time point{'s' * (t != 1)}; the image has {want}: give labels "
            "with the image's time points (0 where a time point is not labelled)",
            path=path,
        )
    return 2 if z == 1 else 3
