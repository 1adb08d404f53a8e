"""VGG16 / VGG19 feature layers as ONNX graphs, built from torchvision's state dicts.

torchvision itself is not a dependency: PyPI's CPU torchvision does not import beside the torch
we pin, and the build that does is a 5.5 GB CUDA wheel. VGG's feature stack is a plain chain
(3×3 convolutions with padding 1, ReLU, 2×2 max pooling), so it is written here twice, both with
torchvision's exact layout (``torchvision.models.vgg.make_layers``, configurations ``"D"`` and
``"E"``) and state-dict keys (``features.<index>.weight``/``.bias``, the index in the
``nn.Sequential``):

- :func:`vgg_torch`, a plain-torch module whose ``state_dict`` loads torchvision's weight files
  (used to check the layout and to convert weights);
- :func:`vgg_onnx`, the ONNX graph of the layers up to the deepest one tapped, built with
  ``onnx.helper`` straight from the arrays, so the bytes (and so the content hash) depend only on
  the weights.

ImageNet weights are fetched once into the user cache (:func:`cache_dir`), read with
``torch.load(weights_only=True)`` (no pickle execution), kept as ``.npz`` and the ``.pth``
deleted. Without weights (``weights="random"``) the layers are initialised as torchvision does
(Kaiming normal, fan-out, zero bias) from a seeded NumPy generator.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np

from scopeml.errors import InvalidRequestError
from scopeml.io.replace import atomic_write

#: torchvision's layer configurations: channel counts, ``"M"`` a 2×2 max pooling.
CFGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}  # fmt: skip
#: torchvision's ImageNet weight files; the 8 hex digits are the start of their SHA-256.
WEIGHT_FILES = {"vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth"}
#: The network's own input normalisation (ImageNet statistics, RGB, values in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names(arch: str) -> dict[str, int]:
    """``convB_N`` / ``poolB`` → index in torchvision's ``features`` Sequential (the index of a
    convolution's *ReLU* output, which is what a tap reads).

    Examples
    --------
    >>> names = layer_names("vgg19")
    >>> names["conv1_2"], names["pool1"], names["conv3_2"]
    (3, 4, 13)
    """
    cfg = _cfg(arch)
    names, index, block, conv = {}, 0, 1, 1
    for v in cfg:
        if v == "M":
            names[f"pool{block}"] = index
            index, block, conv = index + 1, block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = index + 1  # after the ReLU
            index, conv = index + 2, conv + 1
    return names


def random_state_dict(arch: str, *, upto: int | None = None, seed: int = 0) -> dict:
    """torchvision's initialisation of ``features`` (Kaiming normal, fan-out, ReLU gain; zero
    bias), from a seeded NumPy generator: ``{"features.i.weight": array, …}`` float32."""
    rng = np.random.default_rng(seed)
    state, index, channels = {}, 0, 3
    for v in _cfg(arch):
        if upto is not None and index > upto:
            break
        if v == "M":
            index += 1
            continue
        std = np.sqrt(2.0 / (int(v) * 9))
        state[f"features.{index}.weight"] = (rng.standard_normal((v, channels, 3, 3)) * std).astype(
            np.float32
        )
        state[f"features.{index}.bias"] = np.zeros(int(v), np.float32)
        index, channels = index + 2, int(v)
    return state


def vgg_torch(arch: str):
    """Plain-torch ``features`` stack of torchvision's VGG (``weights=None`` initialisation):
    a module with a ``features`` ``nn.Sequential`` whose state dict keys equal torchvision's."""
    from torch import nn

    layers: list[nn.Module] = []
    channels = 3
    for v in _cfg(arch):
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(channels, int(v), kernel_size=3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(conv.bias, 0)
            layers += [conv, nn.ReLU(inplace=True)]
            channels = int(v)
    module = nn.Module()
    module.features = nn.Sequential(*layers)
    return module.eval()


def vgg_onnx(arch: str, state: dict, taps: dict[str, int]) -> bytes:
    """Serialised ONNX graph of ``features[0..max(taps)]`` with one output per tap (named by
    the tap; ``N×C×H/s×W/s`` float32), input ``image`` ``N×3×H×W`` already normalised."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    deepest = max(taps.values())
    nodes, inits = [], []
    current, index, channels = "image", 0, 3
    out_of, channels_of = {}, {}
    for v in _cfg(arch):
        if index > deepest:
            break
        if v == "M":
            out = f"features.{index}"
            nodes.append(helper.make_node(
                "MaxPool", [current], [out], kernel_shape=[2, 2], strides=[2, 2]
            ))  # fmt: skip
            out_of[index], channels_of[index] = out, channels
            current, index = out, index + 1
            continue
        w, b = f"features.{index}.weight", f"features.{index}.bias"
        for key in (w, b):
            if key not in state:
                raise InvalidRequestError(f"{arch} weights lack {key}")
        weight = np.asarray(state[w], np.float32)
        if weight.shape != (int(v), channels, 3, 3):
            raise InvalidRequestError(f"{arch} weights: {w} has shape {weight.shape}")
        inits += [numpy_helper.from_array(weight, w),
                  numpy_helper.from_array(np.asarray(state[b], np.float32), b)]  # fmt: skip
        conv, relu = f"features.{index}", f"features.{index + 1}"
        nodes.append(helper.make_node(
            "Conv", [current, w, b], [conv], kernel_shape=[3, 3], pads=[1, 1, 1, 1]
        ))  # fmt: skip
        nodes.append(helper.make_node("Relu", [conv], [relu]))
        out_of[index], out_of[index + 1] = conv, relu
        channels_of[index] = channels_of[index + 1] = int(v)
        current, index, channels = relu, index + 2, int(v)
    outputs = []
    for name, i in taps.items():
        nodes.append(helper.make_node("Identity", [out_of[i]], [name]))
        outputs.append(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", channels_of[i], "h", "w"])
        )
    graph = helper.make_graph(
        nodes,
        f"{arch}-features",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)


def cache_dir() -> Path:
    """Where fetched weights and built graphs live: ``$SCOPEML_CACHE`` or ``~/.cache/scopeml``."""
    root = os.environ.get("SCOPEML_CACHE") or Path.home() / ".cache" / "scopeml"
    return Path(root) / "networks"


def imagenet_state_dict(arch: str, *, cache: Path | None = None) -> dict:
    """torchvision's ImageNet weights of ``features``, fetched on first use (needs internet),
    checked against the hash prefix in their name, converted once to ``.npz``."""
    folder = cache or cache_dir()
    npz = folder / f"{arch}-imagenet.npz"
    if not npz.exists():
        _cfg(arch)
        pth = folder / WEIGHT_FILES[arch]
        if not pth.exists():  # a file copied in by hand (no internet) is used as it is
            url = _url(arch, pth)
            folder.mkdir(parents=True, exist_ok=True)
            try:
                urllib.request.urlretrieve(url, pth)
            except OSError as err:
                raise MissingWeightsError(
                    f"cannot fetch {arch} ImageNet weights from {url} ({err}); on a machine "
                    f"without internet, copy torchvision's {pth.name} into {folder}",
                    arch=arch,
                ) from err
        _convert(pth, npz, expected=pth.stem.rsplit("-", 1)[1])
    with np.load(npz, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def weights_present(arch: str, *, cache: Path | None = None) -> bool:
    """Whether ``arch``'s ImageNet weights are in the cache (converted, or a copied ``.pth``):
    what ``pixel features --list`` says of the presets that need them."""
    folder = cache or cache_dir()
    return (folder / f"{arch}-imagenet.npz").is_file() or (folder / WEIGHT_FILES[arch]).is_file()


def _convert(pth: Path, npz: Path, *, expected: str) -> None:
    """The one ``torch.load`` (``weights_only=True``: tensors only, no code) of a weight file."""
    try:
        import torch
    except ImportError as err:
        raise InvalidRequestError(
            f"{pth.name}: converting torchvision weights needs torch (pip install scopeml[train])"
        ) from err

    digest = hashlib.sha256(pth.read_bytes()).hexdigest()
    if not digest.startswith(expected):
        pth.unlink()  # a truncated download or a wrong copy: never kept, never converted
        raise InvalidRequestError(
            f"SHA-256 starts {digest[:8]}, expected {expected} (a damaged or different file); "
            f"deleted it: copy the right {pth.name} into {pth.parent} again, or let scopeml "
            "fetch it (torchvision installed or SCOPEML_WEIGHTS_URL set)",
            path=pth,
        )
    state = torch.load(pth, map_location="cpu", weights_only=True)
    arrays = {k: v.numpy() for k, v in state.items() if k.startswith("features.")}
    with atomic_write(npz) as temp, open(temp, "wb") as stream:  # a stream: savez adds no .npz
        np.savez(stream, **arrays)
    pth.unlink()


def _url(arch: str, pth: Path) -> str:
    """Where torchvision publishes the weight file: ``$SCOPEML_WEIGHTS_URL`` (a folder URL) or
    torchvision's own weights table, so no download address is written into scopeml."""
    base = os.environ.get("SCOPEML_WEIGHTS_URL")
    if base:
        return f"{base.rstrip('/')}/{pth.name}"
    try:
        from torchvision import models

        return getattr(models, f"{arch.upper()}_Weights").IMAGENET1K_V1.url
    except Exception as err:  # torchvision missing, or not importable beside this torch
        raise MissingWeightsError(
            f"{arch} ImageNet weights are not in {pth.parent} and no download address is known "
            f"(torchvision does not import, SCOPEML_WEIGHTS_URL is not set): copy torchvision's "
            f"{pth.name} there, install torchvision (its weights table names the address), or "
            f"set SCOPEML_WEIGHTS_URL to a folder URL that holds it",
            arch=arch,
        ) from err


def download_address_known(arch: str) -> bool:
    """Whether :func:`_url` finds where to fetch ``arch``'s weights (for ``features --list``)."""
    try:
        _url(arch, Path(f"{arch}.pth"))
    except MissingWeightsError:
        return False
    return True


class MissingWeightsError(InvalidRequestError):
    """ImageNet weights that are neither in the cache nor fetchable. The message ends with the
    untrained variant to use instead: of the features asked for once :meth:`for_spec` knows
    them (``vgg19-256+basic25`` → ``vgg19-random-256+basic25``), else ``arch``'s first preset."""

    def __init__(
        self, text: str, *, arch: str | None = None, spec: str | None = None, path=None
    ) -> None:
        self.text, self.arch = text, arch
        offer = f"; or use {untrained_spec(arch, spec)}" if arch else ""  # none: text has it
        super().__init__(text + offer, path=path)

    def for_spec(self, spec: str) -> MissingWeightsError:
        """The same error suggesting the untrained variant of ``spec``."""
        if self.arch is None:
            return self
        return MissingWeightsError(self.text, arch=self.arch, spec=spec, path=self.path)


def untrained_spec(arch: str, spec: str | None = None) -> str:
    """The untrained variant of a feature spec of ``arch``, said as what it is.

    Examples
    --------
    >>> untrained_spec("vgg19", "vgg19-256+basic25")
    'vgg19-random-256+basic25 (the same network untrained: seeded random weights, no download)'
    >>> untrained_spec("vgg19", "vgg19:conv1_2@1,2").split()[0]
    'vgg19-random:conv1_2@1,2'
    >>> untrained_spec("vgg16").split()[0]
    'vgg16-random-convpaint'
    """
    if spec is None or not spec.startswith(arch):
        from scopeml.features.deep import DEEP_PRESETS

        spec = next(n for n, p in DEEP_PRESETS.items() if p["network"] == arch)
    return (
        f"{arch}-random{spec[len(arch) :]} (the same network untrained: seeded random weights, "
        "no download)"
    )


def _cfg(arch: str) -> list[int | str]:
    if arch not in CFGS:
        raise InvalidRequestError(f"unknown network {arch!r}; known: {', '.join(CFGS)}")
    return CFGS[arch]
