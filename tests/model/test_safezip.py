"""Untrusted zip archives are read into memory within limits, or refused with a clear error."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest

from scopeml.errors import InvalidContainerError
from scopeml.model.safezip import (
    SafeZip,
    ZipLimits,
    json_bytes,
    npy_bytes,
    read_zip_members,
    write_zip,
)


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buffer.getvalue()


def test_reads_members_in_order_without_folders(tmp_path):
    data = make_zip({"model.json": b"{}", "sub/": b"", "sub/model.model": b"\x01\x02"})
    path = tmp_path / "a.czann"
    path.write_bytes(data)
    assert read_zip_members(path) == {"model.json": b"{}", "sub/model.model": b"\x01\x02"}
    assert list(read_zip_members(data)) == ["model.json", "sub/model.model"]


@pytest.mark.parametrize(
    "name", ["../evil.json", "a/../../evil", "/etc/passwd", "C:/evil", "dir\\..\\evil", "a\x01b"]
)
def test_rejects_unsafe_member_names(tmp_path, name):
    path = tmp_path / "unsafe.czann"
    path.write_bytes(make_zip({"model.json": b"{}", name: b"x"}))
    with pytest.raises(InvalidContainerError, match="unsafe member name") as caught:
        read_zip_members(path)
    assert caught.value.path == str(path)
    assert list(tmp_path.iterdir()) == [path]  # nothing written anywhere


def test_rejects_a_zip_bomb_by_compression_ratio(tmp_path):
    path = tmp_path / "bomb.czann"
    path.write_bytes(make_zip({"model.json": b"{}", "model.model": bytes(64 << 20)}))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(InvalidContainerError, match="compression ratio"):
        read_zip_members(path)


def test_rejects_members_beyond_the_size_limits():
    data = make_zip({"a": bytes(3000), "b": bytes(3000)}, zipfile.ZIP_STORED)
    with pytest.raises(InvalidContainerError, match="limit"):
        read_zip_members(data, limits=ZipLimits(max_member_bytes=2000))
    with pytest.raises(InvalidContainerError, match="limit"):
        read_zip_members(data, limits=ZipLimits(max_total_bytes=5000))
    assert len(read_zip_members(data, limits=ZipLimits(max_total_bytes=6000))) == 2


def test_a_header_that_lies_about_the_size_does_not_get_past_the_limit():
    real = make_zip({"model.model": bytes(1 << 20)})
    # patch the declared uncompressed size (local header offset 22, central directory offset 24)
    lying = bytearray(real)
    struct.pack_into("<I", lying, 22, 10)
    central = lying.rfind(b"PK\x01\x02")
    struct.pack_into("<I", lying, central + 24, 10)
    with pytest.raises(InvalidContainerError):
        read_zip_members(bytes(lying), limits=ZipLimits(max_member_bytes=1000))


def test_rejects_too_many_members_and_duplicates():
    many = make_zip({f"m{i}": b"" for i in range(10)})
    with pytest.raises(InvalidContainerError, match="10 members"):
        read_zip_members(many, limits=ZipLimits(max_members=5))
    buffer = io.BytesIO()
    with pytest.warns(UserWarning), zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.json", b"{}")
        archive.writestr("model.json", b"[]")
    with pytest.raises(InvalidContainerError, match="duplicate"):
        read_zip_members(buffer.getvalue())


@pytest.mark.parametrize("cut", [0, 10, 100, -30, -1])
def test_truncated_or_garbage_archives_are_invalid(tmp_path, cut):
    data = make_zip({"model.json": b"{}" * 100, "model.model": bytes(range(256)) * 40})
    path = tmp_path / "cut.czann"
    path.write_bytes(data[:cut])
    with pytest.raises(InvalidContainerError) as caught:
        read_zip_members(path)
    assert str(path) in str(caught.value)


def test_corrupt_compressed_data_is_invalid():
    data = bytearray(make_zip({"model.model": bytes(range(256)) * 400}))
    data[60:80] = b"\xff" * 20  # inside the deflate stream
    with pytest.raises(InvalidContainerError):
        read_zip_members(bytes(data))


def test_safe_zip_reads_json_and_plain_arrays_only():
    good = np.arange(6, dtype=np.int32).reshape(2, 3)
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    data = io.BytesIO()
    members = [("meta.json", json_bytes({"k": [1]})), ("good.npy", npy_bytes(good))]
    write_zip(data, [*members, ("evil.npy", pickled.getvalue()), ("bad.json", b"{")])
    with SafeZip(data.getvalue()) as archive:
        assert archive.names == ["meta.json", "good.npy", "evil.npy", "bad.json"]
        assert archive.read_json("meta.json") == {"k": [1]}
        np.testing.assert_array_equal(archive.read_array("good.npy", dtype="int32"), good)
        with pytest.raises(InvalidContainerError, match="expected float64"):
            archive.read_array("good.npy", dtype="float64")
        with pytest.raises(InvalidContainerError, match="≤ 1-D"):
            archive.read_array("good.npy", max_ndim=1)
        with pytest.raises(InvalidContainerError, match=r"evil\.npy holds object"):
            archive.read_array("evil.npy")
        with pytest.raises(InvalidContainerError, match="not valid JSON"):
            archive.read_json("bad.json")
        with pytest.raises(InvalidContainerError, match=r"'missing\.npy' is missing"):
            archive.read("missing.npy")


def test_json_members_get_the_json_limit_and_reads_count_towards_the_total():
    data = make_zip({"a.json": b"[" + b"0," * 600 + b"0]", "b": bytes(3000), "c": bytes(3000)})
    limits = ZipLimits(max_json_bytes=1000, max_total_bytes=5000)
    with SafeZip(data, limits=limits) as archive:
        with pytest.raises(InvalidContainerError, match="larger than 1000 bytes"):
            archive.read_json("a.json")
        assert len(archive.read("b")) == 3000
        with pytest.raises(InvalidContainerError, match="larger than 2000 bytes"):
            archive.read("c")  # only 5000 - 3000 bytes are left


def test_write_zip_is_atomic_and_checks_names(tmp_path):
    path = tmp_path / "m.zip"
    write_zip(path, [("model.json", b"{}")])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="unsafe member name"):
        write_zip(path, [("model.json", b"[]"), ("../escape", b"x")])
    assert path.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zip"]  # no temporary left
    write_zip(path, [("model.json", b"[]")])
    assert read_zip_members(path) == {"model.json": b"[]"}
    assert write_zip(tmp_path / "again.zip", [("model.json", b"[]")]) is None
    assert (tmp_path / "again.zip").read_bytes() == path.read_bytes()  # deterministic bytes


def test_a_model_zip_with_an_unsafe_member_says_so_wherever_it_is_opened(tmp_path):
    """Opening (segment -m, model inspect, sm.open_model) said 'damaged or truncated?'; only
    model validate gave the reason."""
    from scopeml.model.registry import open_model

    path = tmp_path / "evil.czann"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.json", "{}")
        archive.writestr("../../evil.txt", "x")
    with pytest.raises(InvalidContainerError, match=r"unsafe member name '\.\./\.\./evil\.txt'"):
        open_model(path)
    assert not (tmp_path.parent / "evil.txt").exists()
