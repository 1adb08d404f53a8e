"""A bioimage.io package with a zip bomb or with weights given by URL is refused at submit
(an analysis naming it, or its upload as a model): 422, one line naming the file and the
problem, from the loader's own check (:class:`~scopeml.model.safezip.SafeZip`, the package
reader), with nothing queued or stored."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import tifffile
import yaml

from scopeml.client import Client, ServerResponseError
from scopeml.synthetic import synthetic_nuclei

from .conftest import ServerProcess, own_server

pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")

from tests.model.test_bioimageio import rdf_v05, v05_files

SETTINGS = """\
version: 1
channels: [C0]
classes:
  - name: cell
    segmenter:
      kind: model
      model: {model}
      class: cell
      channels: [C0]
"""

#: What each bad package's refusal says about its file.
REFUSALS = {
    "bomb.zip": "member 'weights.onnx' has a compression ratio above 200 (a zip bomb?)",
    "huge.zip": "member 'weights.onnx' unpacks to 524288000 bytes: larger than",
    "url.zip": "the ONNX weights is a URL (https://example.org/weights.onnx); scopeml never "
    "downloads",
}


def package(path: Path, rdf: dict, zeros: tuple[str, int] | None = None) -> Path:
    """The test package, its member ``zeros[0]`` replaced by ``zeros[1]`` bytes of zeros
    (written in 1 MiB pieces: ~1000:1 deflated)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("rdf.yaml", yaml.safe_dump(rdf))
        for name, data in v05_files().items():
            if zeros is None or name != zeros[0]:
                archive.writestr(name, data)
        if zeros is not None:
            with archive.open(zeros[0], "w", force_zip64=True) as member:
                for _ in range(zeros[1] // 2**20):
                    member.write(bytes(2**20))
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("package-submit-root")
    package(root / "good.zip", rdf_v05())
    package(root / "bomb.zip", rdf_v05(), ("weights.onnx", 50 * 2**20))  # ratio ~1000
    package(root / "huge.zip", rdf_v05(), ("weights.onnx", 500 * 2**20))  # over 400 MiB
    url = rdf_v05()
    url["weights"]["onnx"]["source"] = "https://example.org/weights.onnx"
    package(root / "url.zip", url)
    image, _ = synthetic_nuclei((64, 80), density=0.004, seed=5)
    tifffile.imwrite(root / "cells.tif", image[0])
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[ServerProcess]:
    yield from own_server(tmp_path_factory, "package-submit", "--allowed-root", str(root))


@pytest.fixture(scope="module")
def alice(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.tokens["alice"]) as client:
        yield client


def refusal(err: pytest.ExceptionInfo[ServerResponseError], *parts: str) -> str:
    message = str(err.value)
    assert err.value.status_code == 422, message
    assert "\n" not in message and all(part in message for part in parts), message
    return message


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_an_analysis_naming_a_bad_package_is_refused_at_submit(alice, server, root, tmp_path, name):
    settings = tmp_path / "mine.yaml"
    settings.write_text(SETTINGS.format(model=name))
    before = len(alice.list_jobs())
    with pytest.raises(ServerResponseError) as err:
        alice.submit_analysis(settings, image_paths=["cells.tif"])
    where = f"mine.yaml: line 7: classes[0].segmenter.model: {name}: "
    message = refusal(err, where + REFUSALS[name])
    assert str(root) not in message and str(server.data_dir) not in message, message
    assert len(alice.list_jobs()) == before  # nothing queued


def test_a_bad_package_upload_is_refused_and_a_good_one_stored(alice, root):
    before = len(alice.list_models())
    for name, problem in sorted(REFUSALS.items()):
        with pytest.raises(ServerResponseError) as err:
            alice.upload_model(root / name)
        refusal(err, f"{name}: {problem}")
    assert len(alice.list_models()) == before  # nothing stored
    stored = alice.upload_model(root / "good.zip")
    assert stored["name"] == "good.zip" and stored["spec"]["classes"] == ["background", "cell"]
