"""``POST /analyses`` takes a folder (or a glob pattern) below the allowed root, expanded as
``scopeml analyze`` expands it (its subfolders too, label images left out, names by the path
below the folder); a folder in which a file or a subfolder links outside the root is refused
in one line naming the link, never its target."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import tifffile

from scopeml.analysis import run_analysis
from scopeml.client import Client, ServerResponseError
from scopeml.synthetic import synthetic_nuclei

from .conftest import ServerProcess, own_server

WAIT_S = 240.0

SETTINGS = """\
version: 1
channels: [C0]
classes:
  - name: blob
    segmenter:
      kind: threshold
      channel: C0
      method: otsu
"""


def nuclei(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image, _ = synthetic_nuclei((64, 80), density=0.004, seed=seed)
    tifffile.imwrite(path, image[0])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    top = tmp_path_factory.mktemp("analysis-folders")
    root = top / "root"
    nuclei(root / "plate" / "b.tif", 1)
    nuclei(root / "plate" / "A1" / "a.tif", 2)
    nuclei(root / "plate" / "b_labels.tif", 3)  # a label image: left out, as the CLI does
    nuclei(top / "outside" / "secret.tif", 4)
    nuclei(root / "leaky" / "a.tif", 5)
    os.symlink(top / "outside" / "secret.tif", root / "leaky" / "escape.tif")
    nuclei(root / "leaky-folder" / "a.tif", 6)
    os.symlink(top / "outside", root / "leaky-folder" / "sub")
    return root


@pytest.fixture(scope="module")
def alice(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[Client]:
    server: ServerProcess
    for server in own_server(tmp_path_factory, "analysis-folders", "--allowed-root", str(root)):
        with Client(server.url, server.tokens["alice"]) as client:
            yield client


def test_a_folder_is_analysed_as_the_command_line_analyses_it(alice, root, tmp_path) -> None:
    settings = tmp_path / "analysis.yaml"
    settings.write_text(SETTINGS)
    local = run_analysis(settings, [root / "plate"], tmp_path / "local", workers=1)
    assert sorted(local.counts) == ["A1__a", "b"]  # the labels file left out
    job = alice.submit_analysis(settings, image_paths=["plate"])
    with pytest.warns(UserWarning, match=f"job {job['id']}: left out 1 label image") as said:
        done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
    assert done["status"] == "done" and done["error"] is None, done
    assert done["images"] == ["plate"]
    # the client is told what the command line tells its user, once, without server paths
    assert len(done["warnings"]) == 1, done["warnings"]
    assert done["warnings"][0].startswith("left out 1 label image (names ending _labels")
    assert "such as b_labels.tif" in done["warnings"][0]
    assert str(root) not in done["warnings"][0]
    assert [str(w.message) for w in said if "label image" in str(w.message)] == [
        f"job {job['id']}: {done['warnings'][0]}"
    ]
    results = alice.download_result(job["id"], tmp_path / "remote")
    assert sorted(p.name for p in (results / "images").iterdir()) == ["A1__a", "b"]
    remote = pd.read_csv(results / "tables" / "blob.csv")
    mine = pd.read_csv(tmp_path / "local" / "tables" / "blob.csv")
    assert len(remote) == len(mine) > 4
    numbers = remote.select_dtypes("number").columns
    pd.testing.assert_frame_equal(remote[numbers], mine[numbers])
    assert str(root) not in (results / "tables" / "blob.csv").read_text()  # no server path

    job = alice.submit_analysis(settings, image_paths=["plate/*.tif"])  # a pattern: b.tif
    done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
    assert done["status"] == "done", done
    results = alice.download_result(job["id"], tmp_path / "pattern")
    assert [p.name for p in (results / "images").iterdir()] == ["b"]


@pytest.mark.parametrize(
    ("folder", "link"),
    [
        ("leaky", "leaky/escape.tif"),
        ("leaky-folder", "leaky-folder/sub"),
        ("*/sub/*", "leaky-folder/sub"),
    ],
)
def test_a_link_out_of_the_root_in_a_folder_is_refused(alice, tmp_path, folder, link) -> None:
    settings = tmp_path / "analysis.yaml"
    settings.write_text(SETTINGS)
    before = len(alice.list_jobs())
    with pytest.raises(ServerResponseError) as err:
        alice.submit_analysis(settings, image_paths=[folder])
    message = str(err.value)
    assert err.value.status_code == 422, message
    assert f"image path '{folder}': {link} links outside the allowed root" in message
    assert "outside/" not in message and "secret" not in message  # nothing behind the link
    assert len(alice.list_jobs()) == before  # nothing queued


def test_an_empty_folder_or_pattern_says_so(alice, root, tmp_path) -> None:
    settings = tmp_path / "analysis.yaml"
    settings.write_text(SETTINGS)
    (root / "empty").mkdir(exist_ok=True)
    for name, says in (("empty", "no images here"), ("plate/*.czi", "no images here")):
        with pytest.raises(ServerResponseError) as err:
            alice.submit_analysis(settings, image_paths=[name])
        assert err.value.status_code == 422 and f"image path '{name}': {says}" in str(err.value)


def test_a_file_read_by_channel_position_is_said_by_its_name_below_the_root(alice, root, tmp_path):
    """Settings naming the channel DAPI on plain TIFFs (C0): read in order, and the warning
    names each file as the client knows it, never by the server's path."""
    settings = tmp_path / "dapi.yaml"
    settings.write_text(SETTINGS.replace("C0", "DAPI"))
    job = alice.submit_analysis(settings, image_paths=["plate/b.tif"])
    with pytest.warns(UserWarning, match="b.tif: the file names no channels: read C0 as DAPI"):
        done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
    assert done["status"] == "done", done
    said = [w for w in done["warnings"] if "names no channels" in w]
    assert len(said) == 1 and said[0].startswith("plate/b.tif: "), done["warnings"]
    assert all(str(root) not in w for w in done["warnings"]), done["warnings"]


def test_fields_of_one_file_per_channel_are_analysed_by_their_names_below_the_root(
    alice, root, tmp_path
) -> None:
    """Settings ``inputs: channel_files`` group a folder's files into fields on the server as
    on the command line; records name each field's files as the client knows them."""
    for stem, seed in (("f1", 7), ("f2", 8)):
        nuclei(root / "fields" / f"{stem}_D.tif", seed)
        nuclei(root / "fields" / f"{stem}_F.tif", seed + 10)
    settings = tmp_path / "fields.yaml"  # the built-in model: submit checks its channels
    settings.write_text(
        "version: 1\nchannels: [DNA, GFP]\ninputs:\n"
        "  channel_files: {DNA: '*_D.tif', GFP: '*_F.tif'}\nclasses:\n  - name: blob\n"
        "    segmenter: {kind: instances, model: nuclei, channels: [DNA], scale: 1}\n"
    )
    local = run_analysis(settings, [root / "fields"], tmp_path / "local", workers=1)
    job = alice.submit_analysis(settings, image_paths=["fields"])
    done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
    assert done["status"] == "done", done
    results = alice.download_result(job["id"], tmp_path / "remote")
    assert sorted(p.name for p in (results / "images").iterdir()) == ["f1", "f2"]
    record = (results / "images" / "f2" / "record.json").read_text()
    assert '"image": "fields/f2_D.tif + fields/f2_F.tif"' in record and str(root) not in record
    remote = pd.read_csv(results / "tables" / "blob.csv")
    mine = pd.read_csv(tmp_path / "local" / "tables" / "blob.csv")
    assert len(remote) == len(mine) == sum(local.counts[n]["blob"] for n in ("f1", "f2")) > 4
    # each channel's files named on their own: grouped across the paths, as the CLI does
    job = alice.submit_analysis(settings, image_paths=["fields/*_D.tif", "fields/*_F.tif"])
    done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
    assert done["status"] == "done" and done["error"] is None, done
    os.remove(root / "fields" / "f2_F.tif")  # no complete field left in f2*: said without paths
    with pytest.raises(ServerResponseError) as err:
        alice.submit_analysis(settings, image_paths=["fields/f2*"])
    assert "fields/f2_D.tif's (no GFP file" in str(err.value) and str(root) not in str(err.value)
    os.symlink(root.parent / "outside" / "secret.tif", root / "fields" / "f3_F.tif")
    nuclei(root / "fields" / "f3_D.tif", 9)
    with pytest.raises(ServerResponseError) as err:
        alice.submit_analysis(settings, image_paths=["fields"])
    assert "fields/f3_F.tif links outside the allowed root" in str(err.value)
    uploads = [alice.upload_image(root / "fields" / name) for name in ("f1_D.tif", "f1_F.tif")]
    with pytest.raises(ServerResponseError, match="each upload is alone in its own") as err:
        alice.submit_analysis(settings, upload_ids=uploads)  # never a field: refused at once
    assert err.value.status_code == 422


def test_a_chunk_linked_out_of_the_root_fails_its_image_without_naming_the_target(
    alice, root, tmp_path
) -> None:
    """A zarr chunk swapped for a link out of the root is refused where it is read; the
    image's failure names the chunk as the client knows it, never where the link leads."""
    from scopeml.io import Image, write_ome_zarr

    store = root / "zarrs" / "linked.ome.zarr"
    store.parent.mkdir()
    image, _ = synthetic_nuclei((64, 80), density=0.004, seed=11)
    write_ome_zarr(store, Image(image[0]))
    chunks = [p for p in (store / "0").rglob("*") if p.is_file() and "c" in p.parts]
    assert chunks
    chunks[0].unlink()
    os.symlink(root.parent / "outside" / "secret.tif", chunks[0])
    settings = tmp_path / "analysis.yaml"
    settings.write_text(SETTINGS)
    job = alice.submit_analysis(settings, image_paths=["zarrs"])
    done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
    assert done["status"] == "failed", done  # its one image failed: nothing analysed
    chunk = chunks[0].relative_to(root).as_posix()
    assert f"{chunk}: lies outside the folders this image may read" in done["error"], done
    assert str(root.parent) not in done["error"] and "secret" not in done["error"], done


def test_an_analysis_is_done_while_an_image_was_analysed_and_failed_when_none_was(
    alice, root, tmp_path
) -> None:
    nuclei(root / "mixed" / "good.tif", 12)
    (root / "mixed" / "junk.tif").write_bytes(b"not a tiff at all")
    settings = tmp_path / "analysis.yaml"
    settings.write_text(SETTINGS)
    some = alice.wait_job(alice.submit_analysis(settings, image_paths=["mixed"])["id"],
                          timeout=WAIT_S, interval=0.2)  # fmt: skip
    assert some["status"] == "done" and some["error"].startswith("1 of 2 images failed: junk")
    none = alice.wait_job(alice.submit_analysis(settings, image_paths=["mixed/junk.tif"])["id"],
                          timeout=WAIT_S, interval=0.2)  # fmt: skip
    assert none["status"] == "failed" and none["error"].startswith("1 of 1 images failed: junk")


def test_an_image_named_twice_is_analysed_and_listed_once(alice, tmp_path) -> None:
    settings = tmp_path / "analysis.yaml"
    settings.write_text(SETTINGS)
    job = alice.submit_analysis(settings, image_paths=["plate/b.tif"] * 50 + ["plate"])
    done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
    assert done["status"] == "done" and done["images"] == ["plate/b.tif", "plate"], done
