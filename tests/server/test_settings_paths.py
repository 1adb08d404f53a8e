"""Model and classifier paths in a server analysis's settings: a relative one is below the
allowed root (as ``image_path``), a missing one or one outside the root answers 422 at submit
naming its line, the job checks them again where it opens them, and no error a client reads
names where the server keeps its files or where a link points (t4 report F1, F2, F3, F9)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from scopeml.analysis import InvalidSettingsError, load_settings
from scopeml.analysis.check import check_settings_files, open_resources
from scopeml.client import Client, ServerResponseError
from scopeml.model import convert_onnx
from scopeml.objects import ObjectClassifier
from scopeml.synthetic import synthetic_nuclei

from .conftest import ServerProcess, make_container, own_server
from .slow_model import slow_onnx

WAIT_S = 240.0

SETTINGS = """\
version: 1
channels: [C0]
classes:
  - name: blob
    segmenter:
      kind: model
      model: {model}
      class: c1
      channels: [C0]
"""

CLASSIFIER = "    classifier: {classifier}\n"  # line 10 of SETTINGS + CLASSIFIER

THRESHOLD = """\
version: 1
channels: [C0]
classes:
  - name: blob
    segmenter:
      kind: threshold
      channel: C0
      method: otsu
"""


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("settings-paths-root")
    outside = tmp_path_factory.mktemp("settings-paths-outside")
    (root / "models").mkdir()
    (root / "plate").mkdir()
    make_container(root / "models" / "m.czann")
    make_container(outside / "secret.czann", seed=1)
    (outside / "secret.txt").write_text("not yours\n")
    (root / "models" / "link.czann").symlink_to(outside / "secret.czann")
    (root / "notes.txt").write_text("not a model\n")
    table = pd.DataFrame({"area": np.arange(20.0), "kind": ["a", "b"] * 10})
    ObjectClassifier.train(table, "kind", n_estimators=3).save(root / "models" / "kind.clf")
    image, _ = synthetic_nuclei((64, 80), density=0.004, seed=5)
    tifffile.imwrite(root / "plate" / "cells.tif", image[0])
    tifffile.imwrite(outside / "secret.tif", np.full((64, 80), 9, np.uint8))
    return {"root": root, "outside": outside}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, places: dict[str, Path]
) -> Iterator[ServerProcess]:
    yield from own_server(tmp_path_factory, "settings-paths", "--allowed-root", str(places["root"]))


@pytest.fixture(scope="module")
def alice(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.tokens["alice"]) as client:
        yield client


def hidden(server: ServerProcess, places: dict[str, Path]) -> list[str]:
    """Where the server keeps files and where links point, as any message could spell them."""
    folders = {server.data_dir, places["root"], places["outside"]}
    return sorted({str(f) for f in folders} | {str(f.resolve()) for f in folders})


def write(folder: Path, text: str, name: str = "analysis.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_a_relative_model_path_is_below_the_allowed_root(alice, places, tmp_path):
    settings = write(tmp_path, SETTINGS.format(model="models/m.czann"))  # not beside the file
    job = alice.submit_analysis(settings, image_paths=["plate/cells.tif"])
    done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
    assert done["status"] == "done" and done["error"] is None, done
    results = alice.download_result(job["id"], tmp_path / "dl")
    assert "model: models/m.czann" in (results / "settings.yaml").read_text()
    assert (results / "tables" / "blob.csv").is_file()
    alice.delete_job(job["id"])


@pytest.mark.parametrize(
    ("model", "classifier", "line", "says"),
    [
        ("models/m.czann", "../outside/secret.txt", 10, "../outside/secret.txt: '..' is not"),
        ("models/link.czann", None, 7, "models/link.czann is outside the allowed root"),
        ("/etc/passwd", None, 7, "passwd: an absolute path is not allowed"),
        ("models/missing.czann", None, 7, "models/missing.czann: no such model file"),
        ("nucleii", None, 7, "did you mean 'nuclei'?"),
        ("notes.txt", None, 7, "notes.txt: not a model file"),
        ("models/m.czann", "plate/missing.clf", 10, "plate/missing.clf: no such file"),
        ("{data}/scopeml.db", None, 7, "scopeml.db: an absolute path is not allowed"),
        # one answer where an absolute path leads into the root (t59 trial: it told where)
        ("{root}/models/absent.czann", None, 7, "absent.czann: an absolute path is not allo"),
        ("{root}/models/m.czann", None, 7, "m.czann: an absolute path is not allowed; name"),
        # the wrong kind, from the file's header (t6 report N2): not left to fail when run
        ("models/m.czann", "models/m.czann", 10, "a segmentation model (czann), not an object"),
        ("models/m.czann", "notes.txt", 10, "notes.txt: not an object classifier"),
        ("models/kind.clf", None, 7, "an object classifier, not a segmentation model"),
        # names no file can have: OSError, ValueError, UnicodeEncodeError answered 500
        ("a" * 300 + ".czann", None, 7, "a part of the path is longer than 255 bytes"),
        ('"m.czann\\0"', None, 7, "it contains a NUL character"),
        ('"\\ud800.czann"', None, 7, "not valid text"),
        ("models/m.czann", '"x\\0"', 10, "it contains a NUL character"),
    ],
)
def test_bad_settings_files_answer_422_at_submit_naming_the_line_and_no_server_path(
    alice, server, places, tmp_path, model, classifier, line, says
):
    model = model.format(data=server.data_dir, root=places["root"])
    text = SETTINGS.format(model=model)
    if classifier is not None:
        text += CLASSIFIER.format(classifier=classifier)
    settings = write(tmp_path, text, "mine.yaml")
    before = len(alice.list_jobs())
    with pytest.raises(ServerResponseError) as err:
        alice.submit_analysis(settings, image_paths=["plate/cells.tif"])
    message = str(err.value)
    assert err.value.status_code == 422, message
    assert f"mine.yaml: line {line}: classes[0]." in message and says in message, message
    assert not [place for place in hidden(server, places) if place in message], message
    assert "secret.czann" not in message  # not where the link points
    assert len(alice.list_jobs()) == before  # nothing queued


def test_dot_dot_is_refused_alike_whatever_lies_there(alice, server, places, tmp_path):
    """``..`` in a settings path answers one message whether it leads back into the root, to a
    missing file there, or out of it: no probing the root's own path (t6 report N3)."""
    root = places["root"]
    names = [
        f"../{root.name}/models/m.czann",  # back inside: was accepted
        f"../{root.name}/models/nothere.czann",  # was "no such model file"
        "../nonexist/x.czann",  # was "outside the allowed root"
        "models/../models/m.czann",
        f"{root}/../{root.name}/models/m.czann",
    ]
    said = set()
    for name in names:
        settings = write(tmp_path, SETTINGS.format(model=name), "dots.yaml")
        with pytest.raises(ServerResponseError) as err:
            alice.submit_analysis(settings, image_paths=["plate/cells.tif"])
        message = str(err.value)
        assert err.value.status_code == 422, message
        assert not [place for place in hidden(server, places) if place in message], message
        said.add(message.replace(name, "NAME").replace(name.replace(f"{root}/", ""), "NAME"))
    assert len(said) == 1, said
    assert "line 7: classes[0].segmenter.model: NAME: '..' is not allowed" in said.pop()


@pytest.fixture(scope="module")
def blocker(alice: Client, tmp_path_factory: pytest.TempPathFactory, places) -> Iterator[str]:
    """A slow job holding the server's one job worker (cancelled by the test), so the jobs
    submitted after it have not opened their files when the test swaps them."""
    path = tmp_path_factory.mktemp("settings-paths-slow") / "slow.czann"
    convert_onnx(
        slow_onnx(trips=200_000), path, classes=["background", "nucleus"], min_overlap=0,
        model_type="MultiClassSemanticSegmentation",
    )  # fmt: skip
    model = alice.upload_model(path)["id"]
    big = places["root"] / "big.ome.tif"  # 64 tiles of about 1 s each
    tifffile.imwrite(big, np.ones((2, 512, 512), np.uint8), metadata={"axes": "CYX"})
    job = alice.submit_job(model, image_path=big.name, tile_size=64, batch_size=1)
    yield job["id"]
    with contextlib.suppress(ServerResponseError):  # the test cancels it
        alice.cancel_job(job["id"])


def test_files_swapped_for_links_after_submit_are_refused_where_opened(
    alice, server, places, blocker, tmp_path
):
    root, outside = places["root"], places["outside"]
    for name in ("swap-model.czann", "swap-seg.tif", "swap-an.tif"):
        (root / "plate" / name).unlink(missing_ok=True)
    shutil.copy(root / "models" / "m.czann", root / "plate" / "swap-model.czann")
    shutil.copy(root / "plate" / "cells.tif", root / "plate" / "swap-seg.tif")
    shutil.copy(root / "plate" / "cells.tif", root / "plate" / "swap-an.tif")
    model_id = alice.upload_model(root / "models" / "m.czann")["id"]
    by_model = alice.submit_analysis(
        write(tmp_path, SETTINGS.format(model="plate/swap-model.czann"), "a.yaml"),
        image_paths=["plate/cells.tif"],
    )
    by_image = alice.submit_analysis(
        write(tmp_path, THRESHOLD, "b.yaml"), image_paths=["plate/swap-an.tif"]
    )
    segment = alice.submit_job(model_id, image_path="plate/swap-seg.tif", tile_size=64)
    assert alice.job(by_model["id"])["status"] == "queued"  # behind the blocker: nothing opened
    for name, target in (
        ("swap-model.czann", outside / "secret.czann"),
        ("swap-an.tif", outside / "secret.tif"),
        ("swap-seg.tif", outside / "secret.tif"),
    ):
        (root / "plate" / name).unlink()
        os.symlink(target, root / "plate" / name)
    assert alice.job(segment["id"])["status"] == "queued"
    alice.cancel_job(blocker)
    expected = {
        by_model["id"]: "a.yaml: line 7: classes[0].segmenter.model: plate/swap-model.czann is "
        "outside the allowed root",
        by_image["id"]: "plate/swap-an.tif: now lies outside the allowed root (a link out of "
        "it, or the server's root changed)",
        segment["id"]: "plate/swap-seg.tif: now lies outside the allowed root (a link out of "
        "it, or the server's root changed)",
    }
    for job_id, says in expected.items():
        failed = alice.wait_job(job_id, timeout=WAIT_S, interval=0.2)
        assert failed["status"] == "failed" and failed["error"].startswith(says), failed
        assert not [p for p in hidden(server, places) if p in failed["error"]], failed
        assert "secret" not in failed["error"]
        alice.delete_job(job_id)


def test_a_file_of_the_wrong_kind_is_named_so_locally_too(places, tmp_path):
    """A local run's check and the opening both say which kind of file a settings line names,
    not a missing member or an attribute error."""
    root = places["root"]
    cases = [
        (SETTINGS.format(model=root / "models" / "kind.clf"), "line 7: classes[0].segmenter."
         "model: " + str(root / "models" / "kind.clf") + ": an object classifier, not a "
         "segmentation model"),
        (SETTINGS.format(model=root / "models" / "m.czann")
         + CLASSIFIER.format(classifier=root / "models" / "m.czann"),
         "line 10: classes[0].classifier: " + str(root / "models" / "m.czann")
         + ": a segmentation model (czann), not an object classifier"),
    ]  # fmt: skip
    for text, says in cases:
        settings = write(tmp_path, text)
        for check in (check_settings_files, open_resources):
            with pytest.raises(InvalidSettingsError) as err:
                check(load_settings(settings), source=settings)
            assert says in str(err.value), (check, str(err.value))
    good = SETTINGS.format(model=root / "models" / "m.czann")
    good += CLASSIFIER.format(classifier=root / "models" / "kind.clf")
    opened = open_resources(load_settings(write(tmp_path, good)), source=tmp_path / "analysis.yaml")
    assert isinstance(opened.classifiers["blob"], ObjectClassifier)


def test_relative_paths_follow_the_settings_file_locally_and_the_base_on_a_server(places, tmp_path):
    """The check behind both: a local run (no ``base``) takes a relative path from the settings
    file's folder; a server's (``base``: its allowed root) from the root, and a link out of the
    root is named as the settings give it, without where it points."""
    root = places["root"]
    local = tmp_path / "mine"
    (local / "models").mkdir(parents=True)
    shutil.copy(root / "models" / "m.czann", local / "models" / "m.czann")
    settings = write(local, SETTINGS.format(model="models/m.czann"))
    parsed = load_settings(settings)
    here = open_resources(parsed, source=settings)
    assert here.model_paths["blob"] == local / "models" / "m.czann"
    served = open_resources(parsed, source=settings, allowed_roots=[root], base=root)
    assert served.model_paths["blob"] == root / "models" / "m.czann"
    shutil.rmtree(local / "models")  # only below the root now: locally missing
    with pytest.raises(InvalidSettingsError, match=r"models/m\.czann: no such model file"):
        open_resources(parsed, source=settings)
    settings.write_text(SETTINGS.format(model="models/link.czann"))
    for check in (open_resources, check_settings_files):
        with pytest.raises(InvalidSettingsError) as err:
            check(load_settings(settings), source=settings, allowed_roots=[root], base=root)
        assert str(err.value).endswith("line 7: classes[0].segmenter.model: "
                                       "models/link.czann is outside the allowed root")  # fmt: skip
        assert "secret" not in str(err.value) and str(places["outside"]) not in str(err.value)
