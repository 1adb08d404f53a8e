"""Hostile inputs of issue #18 against the command line and a live server on 127.0.0.1.

Every case is built here in a temporary folder, run once, and reported as one row::

    python bench/bench_hostile.py              # ~3-6 minutes on 2 cores
    python bench/bench_hostile.py --quick      # a 256 MB zip bomb instead of 2 GB, fewer CLI runs

Columns: where (cli | server), case, outcome (exit code or HTTP status, with what followed),
peak RSS (the CLI process; the server process during the case, its high-water mark reset
before each case through ``/proc/PID/clear_refs``, or the server and its job and image-check
child processes together, sampled every 50 ms, whichever is higher), RSS of the server after
the case, seconds,
whether another user's tile was answered during the case (within ``--probe-timeout`` s), and
the verdict: ``held`` (refused cleanly: exit 2 or a 4xx, one line, no traceback, ≤ 1.5 GB, ≤ the
time budget + 5 s, nothing outside written), ``NOT HELD`` (this area's own case failed) or
``not yet handled`` (a case of another area that does not hold yet). Nothing leaves loopback;
every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import tifffile

GB = 1024**3
MB = 1024**2
MAX_PEAK = 1.5 * GB
SLACK_S = 5.0  # what a case may take beyond the time budget
CLI_TIMEOUT_S = 120.0


@dataclass
class Row:
    where: str
    case: str
    outcome: str = ""
    peak: int = 0
    after: int | None = None
    seconds: float = 0.0
    served: str = "-"
    held: bool = False
    note: str = ""
    own: bool = False  # a case of the server's own area

    def verdict(self) -> str:
        if self.held:
            return "held"
        return "NOT HELD" if self.own else "not yet handled"


@dataclass
class Work:
    """The temporary folder, its files, the time budget and the rows so far."""

    root: Path
    budget: float
    quick: bool
    rows: list[Row] = field(default_factory=list)

    def path(self, name: str) -> Path:
        return self.root / name


# --- hostile files ------------------------------------------------------------------------------


def unet_container(path: Path, *, channels: int = 1, min_overlap: int | None = None) -> Path:
    from scopeml.model import convert_onnx
    from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo

    graph = tiny_unet_onnx(in_channels=channels, n_classes=3, depth=2, seed=0)
    halo = unet_receptive_halo(2) if min_overlap is None else min_overlap
    return convert_onnx(
        graph, path, classes=["a", "b", "c"], min_overlap=halo,
        model_type="MultiClassSemanticSegmentation",
    )  # fmt: skip


def graph_container(path: Path, graph, channels: int) -> Path:
    from scopeml.model import convert_onnx

    names = [f"c{i}" for i in range(channels)]
    return convert_onnx(
        graph, path, classes=names, min_overlap=0, model_type="MultiClassSemanticSegmentation"
    )


def ome_tiff_naming(master: Path, companion: str) -> Path:
    """A two-plane OME-TIFF whose second plane is in the file ``companion`` (as named)."""
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    planes = "".join(
        f'<TiffData FirstZ="{z}" IFD="0" PlaneCount="1"><UUID FileName="{name}">'
        f"urn:uuid:{ids[z]}</UUID></TiffData>"
        for z, name in enumerate([master.name, companion])
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/'
        f'Schemas/OME/2016-06" UUID="urn:uuid:{ids[0]}"><Image ID="Image:0"><Pixels '
        'ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="64" SizeY="64" SizeZ="2" '
        f'SizeC="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>{planes}'
        "</Pixels></Image></OME>"
    )
    tifffile.imwrite(master, np.zeros((64, 64), np.uint8), description=xml, metadata=None)
    return master


def lying_tiff(path: Path, side: int = 10**6) -> Path:
    """A 378-byte-class TIFF whose tags declare ``side × side`` pixels in one strip."""
    tifffile.imwrite(path, np.full((16, 16), 3, np.uint8), metadata=None)
    with tifffile.TiffFile(path, mode="r+") as tif:
        tags = tif.pages.first.tags
        tags["ImageWidth"].overwrite(side)
        tags["ImageLength"].overwrite(side)
        tags["RowsPerStrip"].overwrite(side)
    return path


def declared_zarr(
    path: Path, shape: tuple[int, int], chunks: tuple[int, int], fill: int | None = None
) -> Path:
    """An NGFF image declaring ``shape``: filled with ``fill``, else no chunk written."""
    from scopeml.io import create_ome_zarr

    array = create_ome_zarr(path, shape=shape, dtype="uint8", axes="YX", chunks=chunks)
    if fill is not None:
        array[...] = fill
    return path


def zarr_with_links(root: Path, outside: Path, name: str, *, whole: bool) -> Path:
    """An OME-Zarr in ``root`` whose array folder (``whole``) or one chunk links outside."""
    import shutil

    real = declared_zarr(outside / f"real-{name}", (64, 64), (32, 32), fill=201)
    image = root / name
    if whole:
        image.mkdir()
        shutil.copy(real / "zarr.json", image / "zarr.json")
        (image / "0").symlink_to(real / "0", target_is_directory=True)
        return image
    declared_zarr(image, (64, 64), (32, 32), fill=7)
    chunk = image / "0" / "c" / "0" / "0"
    chunk.unlink()
    chunk.symlink_to(real / "0" / "c" / "0" / "0")
    return image


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def zip_bomb_container(path: Path, member_bytes: int) -> tuple[Path, float]:
    """A container whose ONNX member (one ``uint8`` weight) unpacks to ``member_bytes`` at a
    deflate ratio under 200 (one random byte in every 1024), written streaming."""
    from onnx import TensorProto, helper

    meta = zipfile.ZipFile(unet_container(path.with_suffix(".small.czann"))).read("model.json")
    nodes = [
        helper.make_node("ReduceMax", ["w"], ["m"], keepdims=0),
        helper.make_node("Cast", ["m"], ["mf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["input", "mf"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "bomb",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", "Y", "X", 1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", "Y", "X", 3])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto = TensorProto(name="w", data_type=TensorProto.UINT8, dims=[member_bytes])
    tensor = proto.SerializeToString()
    tensor += b"\x4a" + _varint(member_bytes)  # field 9 (raw_data), its bytes streamed below
    graph_bytes = graph.SerializeToString() + b"\x2a" + _varint(len(tensor) + member_bytes)
    model.ClearField("graph")
    total_graph = len(graph_bytes) + len(tensor) + member_bytes
    prefix = model.SerializeToString() + b"\x3a" + _varint(total_graph) + graph_bytes + tensor
    block = bytearray(MB)
    block[::1024] = np.random.default_rng(0).integers(1, 255, MB // 1024, dtype=np.uint8).tobytes()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("model.json", meta)
        with archive.open("model.model", "w", force_zip64=True) as member:
            member.write(prefix)
            for start in range(0, member_bytes, MB):
                member.write(block[: min(MB, member_bytes - start)])
    info = zipfile.ZipFile(path).getinfo("model.model")
    return path, info.file_size / info.compress_size


# --- measuring ----------------------------------------------------------------------------------


def run_cli(args: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, int, float]:
    """Run ``scopeml ARGS``: exit code (-9 when killed at ``timeout``), stderr, peak RSS, s."""
    command = [str(Path(sys.executable).parent / "scopeml"), *args]
    start = time.monotonic()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    return process.returncode, stderr, usage.ru_maxrss * 1024, time.monotonic() - start


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def sample_tree(pid: int, case: threading.Thread, peak: list[int]) -> None:
    """Keep in ``peak[0]`` the highest RSS of ``pid`` and its children together (jobs and image
    checks run in child processes) while ``case`` runs."""
    import psutil

    while case.is_alive():
        with contextlib.suppress(psutil.Error):
            server = psutil.Process(pid)
            total = 0
            for process in [server, *server.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
            peak[0] = max(peak[0], total)
        time.sleep(0.05)


def reset_peak(pid: int) -> None:
    with contextlib.suppress(OSError):  # Linux ≥ 4.0: "5" resets VmHWM to the current RSS
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def one_line_error(stderr: str) -> bool:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return "Traceback" not in stderr and len(errors) == 1


# --- the command line ---------------------------------------------------------------------------


def cli_cases(work: Work) -> list[tuple[str, list[str], Callable[[int, str], bool]]]:
    """(case, arguments, holds(exit code, stderr)) for each command-line case."""
    from scopeml.model.testing import allocating_onnx, endless_loop_onnx

    w = work.path
    unet = unet_container(w("unet.czann"))
    endless = graph_container(w("endless.czann"), endless_loop_onnx(channels=2), 2)
    allocating = graph_container(w("allocating.czann"), allocating_onnx(channels=2), 2)
    two = w("two.ome.tif")
    tifffile.imwrite(two, np.zeros((2, 64, 64), np.float32), metadata={"axes": "CYX"})
    np.save(w("two.npy"), np.zeros((2, 64, 64), np.float32))
    wide = unet_container(w("overlap.czann"), min_overlap=100_000)
    nan = np.random.default_rng(1).random((64, 64)).astype(np.float32) * 100
    nan[:8, :8], nan[8:16, :8] = np.nan, np.inf
    tifffile.imwrite(w("nan.tif"), nan)
    tifffile.imwrite(w("plain.tif"), np.random.default_rng(2).integers(0, 255, (64, 64), "u1"))
    instances = np.arange(100 * 100, dtype=np.uint16).reshape(100, 100) % 5000 + 1
    tifffile.imwrite(w("instances.tif"), instances)
    tifffile.imwrite(w("img100.tif"), np.zeros((100, 100), np.uint8))
    (w("OUT.ome.zarr.partial")).mkdir()
    (w("OUT.ome.zarr.partial") / "thesis.docx").write_text("a user's document")

    def refused(code: int, stderr: str) -> bool:
        return code == 2 and one_line_error(stderr)

    def kept_document(code: int, stderr: str) -> bool:
        return refused(code, stderr) and (w("OUT.ome.zarr.partial") / "thesis.docx").exists()

    def nan_is_unclassified(code: int, stderr: str) -> bool:
        if code != 0 or "Traceback" in stderr:
            return False
        import zarr

        labels = zarr.open_array(str(w("nan.ome.zarr") / "labels" / "0"), mode="r")[...]
        return bool((labels[:16, :8] == 0).all())

    seg = ["segment", "-q", "-m"]
    cases = [
        ("model validate: endless Loop", ["model", "validate", str(endless)], refused),
        ("model run: endless Loop", ["model", "run", str(endless), str(w("two.npy")),
                                     "-o", str(w("run.npy"))], refused),
        ("segment: endless Loop", [*seg, str(endless), "-o", str(w("e.ome.zarr")), str(two)],
         refused),
        ("model validate: 1.7 GB graph", ["model", "validate", str(allocating)], refused),
        ("segment: TIFF declaring 10^6 x 10^6", [*seg, str(unet), "-o", str(w("t.ome.zarr")),
                                                 str(lying_tiff(w("lying.tif")))], refused),
        ("segment: OME-Zarr declaring 10^12 x 10^12",
         [*seg, str(unet), "-o", str(w("z.ome.zarr")),
          str(declared_zarr(w("huge.ome.zarr"), (10**12, 10**12), (1024, 1024)))], refused),
        ("segment: one 20000^2 chunk", [*seg, str(unet), "-o", str(w("c.ome.zarr")),
         str(declared_zarr(w("chunk.ome.zarr"), (20000, 20000), (20000, 20000)))], refused),
        # A halo is clipped to the image: on 64² one window holds the whole image, so the run
        # is correct and small. On an image whose clipped window passes the tile element bound
        # the plan is refused before any read, naming the model.
        ("segment: MinOverlap 100000, 64² image (halo clipped)",
         [*seg, str(wide), "-o", str(w("o.ome.zarr")), str(w("plain.tif"))],
         lambda code, err: code == 0 and "Traceback" not in err),
        ("segment: MinOverlap 100000, 20000² image",
         [*seg, str(wide), "-o", str(w("o2.ome.zarr")),
          str(declared_zarr(w("wide.ome.zarr"), (20000, 20000), (1024, 1024)))],
         lambda code, err: refused(code, err) and "overlap.czann" in err and "halo" in err),
        ("segment --overwrite: unrelated OUT.partial",
         [*seg, str(unet), "-o", str(w("OUT.ome.zarr")), "--overwrite", str(w("plain.tif"))],
         kept_document),
        ("segment: NaN/Inf pixels", [*seg, str(unet), "-o", str(w("nan.ome.zarr")),
                                     str(w("nan.tif"))], nan_is_unclassified),
        ("segment --normalize percentile: NaN",
         [*seg, str(unet), "-o", str(w("nanp.ome.zarr")), "--normalize", "percentile:1,99",
          str(w("nan.tif"))], lambda code, err: code == 0 and "Traceback" not in err),
        ("pixel train: 5000 label values", ["pixel", "train", str(w("img100.tif")),
         str(w("instances.tif")), "-o", str(w("px.czseg"))], refused),
    ]  # fmt: skip
    if not work.quick:
        bomb, ratio = zip_bomb_container(w("bomb.czann"), 2 * GB)
        cases.append((f"model inspect: zip bomb 2 GB at ratio {ratio:.0f}",
                      ["model", "inspect", str(bomb)], refused))  # fmt: skip
    return cases


def partial_run(image: Path, model: Path, output: Path, tiles: int = 2) -> None:
    """Leave a partial store at ``output``, as a run cancelled after ``tiles`` tiles does."""
    from scopeml.errors import Cancelled
    from scopeml.io import open_image
    from scopeml.model import load_model
    from scopeml.tiling.engine import segment_image
    from scopeml.tiling.options import SegmentOptions

    def stop(event) -> None:
        if event.done >= tiles:
            raise Cancelled("stopped by the bench")

    options = SegmentOptions(tile_size=32, workers=1, quiet=True)
    with open_image(image) as opened, contextlib.suppress(Cancelled):
        segment_image(opened, load_model(model), output, options, progress=stop)


def resume_cases(work: Work, env: dict[str, str], limit: float) -> list[Row]:
    """``--resume`` after the input was replaced, and two ``--resume`` runs on one output."""
    w = work.path
    model = w("unet.czann")
    rng = np.random.default_rng(3)
    tifffile.imwrite(w("swap.tif"), rng.integers(0, 255, (256, 256), "u1"))
    partial_run(w("swap.tif"), model, w("swap.ome.zarr"))
    tifffile.imwrite(w("swap.tif"), rng.integers(0, 255, (256, 256), "u1"))  # same name, shape
    args = ["segment", "-q", "-m", str(model), "-o", str(w("swap.ome.zarr")), "--resume",
            "--tile-size", "32", str(w("swap.tif"))]  # fmt: skip
    code, stderr, peak, seconds = run_cli(args, env, CLI_TIMEOUT_S)
    swap = Row("cli", "segment --resume: input replaced", f"exit {code}", peak, None, seconds)
    swap.held = code == 2 and one_line_error(stderr) and seconds <= limit
    swap.note = stderr.strip().splitlines()[-1][:90] if stderr.strip() else ""

    tifffile.imwrite(w("twice.tif"), rng.integers(0, 255, (1024, 1024), "u1"))
    partial_run(w("twice.tif"), model, w("twice.ome.zarr"))
    args = ["segment", "-q", "-m", str(model), "-o", str(w("twice.ome.zarr")), "--resume",
            "--tile-size", "32", str(w("twice.tif"))]  # fmt: skip
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: run_cli(args, env, CLI_TIMEOUT_S), range(2)))
    codes = sorted(run[0] for run in runs)
    stray = [p.name for p in w("twice.ome.zarr").parent.glob("twice.ome.zarr.partial*")]
    twice = Row("cli", "segment --resume twice at once", f"exits {codes}",
                max(run[2] for run in runs), None, max(run[3] for run in runs))  # fmt: skip
    twice.held = codes in ([0, 2], [0, 0]) and not stray and all(
        one_line_error(run[1]) for run in runs if run[0] == 2)  # fmt: skip
    twice.note = f"left behind: {stray}" if stray else ""
    return [swap, twice]


def run_cli_cases(work: Work) -> None:
    """Each command-line case; the time limit adds the command's own start-up (imports) to the
    budget + 5 s, measured here on ``scopeml info`` of a small image."""
    env = {**os.environ, "SCOPEML_MODEL_TIME_BUDGET": str(work.budget), "OMP_NUM_THREADS": "1"}
    cases = cli_cases(work)
    startup = run_cli(["info", str(work.path("plain.tif"))], env, CLI_TIMEOUT_S)[3]
    limit = work.budget + SLACK_S + startup
    print(f"cli start-up (scopeml info): {startup:.1f} s; cli limit {limit:.1f} s")
    for case, args, holds in cases:
        code, stderr, peak, seconds = run_cli(args, env, CLI_TIMEOUT_S)
        last = stderr.strip().splitlines()[-1][:90] if stderr.strip() else ""
        row = Row("cli", case, f"exit {code}", peak, None, seconds, note=last)
        row.held = holds(code, stderr) and peak <= MAX_PEAK and seconds <= limit
        work.rows.append(row)
        print_row(row)
    for row in resume_cases(work, env, limit):
        work.rows.append(row)
        print_row(row)


# --- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``scopeml serve`` on a free loopback port, with tokens for two users."""

    def __init__(self, work: Work, root: Path) -> None:
        from scopeml.server.database import Database

        self.data = work.path("data")
        db = Database(self.data / "scopeml.db")
        self.tokens = {user: db.create_token(user) for user in ("mallory", "bob")}
        db.close()
        self.url = f"http://127.0.0.1:{free_port()}"
        command = [
            str(Path(sys.executable).parent / "scopeml"), "serve", "--data-dir", str(self.data),
            "--host", "127.0.0.1", "--port", self.url.rsplit(":", 1)[1], "--log-level",
            "warning", "--allowed-root", str(root), "--model-time-budget", str(work.budget),
            "--upload-quota-mb", "64", "--max-tile-memory-mb", "256",
        ]  # fmt: skip
        self.log = work.path("server.log").open("wb")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"server did not start; see {work.path('server.log')}")

    def client(self, user: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=CLI_TIMEOUT_S)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


def probe_tile(server: Server, model_id: str, timeout: float) -> str:
    """Bob's small tile: answered (with the seconds it took) or not."""
    start = time.monotonic()
    try:
        with server.client("bob") as bob:
            response = bob.post(
                f"/models/{model_id}/predict",
                content=np.zeros((1, 64, 64), np.float32).tobytes(),
                headers={"X-Tile-Dtype": "<f4", "X-Tile-Shape": "1,64,64"},
                timeout=timeout,
            )
        answered = response.status_code == 200
    except httpx.HTTPError:
        answered = False
    return f"yes {time.monotonic() - start:.2f}s" if answered else "NO"


def server_case(work, server, bob_model, case, action, timeout, own=True) -> None:
    """Run ``action() -> (outcome, held)`` while Bob's tile is sent; record the row."""
    pid = server.process.pid
    reset_peak(pid)
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["outcome"], result["held"] = action()
        except Exception as err:  # a transport error, a timeout: the case did not hold
            result["outcome"], result["held"] = f"{type(err).__name__}: {err}"[:80], False

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    tree_peak = [0]
    sampler = threading.Thread(target=sample_tree, args=(pid, thread, tree_peak), daemon=True)
    sampler.start()
    time.sleep(0.3)
    served = probe_tile(server, bob_model, timeout)
    thread.join(CLI_TIMEOUT_S)
    seconds = time.monotonic() - start
    sampler.join(1.0)
    peak = max(proc_status(pid, "VmHWM"), tree_peak[0])
    row = Row("server", case, str(result.get("outcome", "no answer")), peak,
              proc_status(pid, "VmRSS"), seconds, served, own=own)  # fmt: skip
    row.note = row.outcome if len(row.outcome) > 43 else ""
    row.held = bool(result.get("held")) and served != "NO" and row.peak <= MAX_PEAK
    row.held = row.held and seconds <= work.budget + SLACK_S + 1
    work.rows.append(row)
    print_row(row)


def upload_model(client: httpx.Client, path: Path) -> httpx.Response:
    return client.post("/models", content=path.read_bytes(), params={"filename": path.name})


def detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))[:70]
    except ValueError:
        return response.text[:70]


def refused_with(response: httpx.Response, status: int, word: str = "") -> tuple[str, bool]:
    held = response.status_code == status and word in detail(response)
    return f"{response.status_code} {detail(response)}", held


def wait_job(client: httpx.Client, job_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    return job


def confinement_cases(work: Work, server: Server, mallory: httpx.Client, unet: str) -> list:
    """(case, action, own) for reads outside the allowed root, through every route in."""
    root, outside = work.path("root"), work.path("outside")
    tifffile.imwrite(outside / "secret.tif", np.full((64, 64), 201, np.uint8))
    ome_tiff_naming(root / "abs.ome.tif", str(outside / "secret.tif"))
    ome_tiff_naming(root / "dotdot.ome.tif", "../outside/secret.tif")
    zarr_with_links(root, outside, "folder.ome.zarr", whole=True)
    zarr_with_links(root, outside, "chunk.ome.zarr", whole=False)
    etc = ome_tiff_naming(work.path("etc.ome.tif"), "/etc/passwd")

    def job(image: str) -> httpx.Response:
        return mallory.post("/jobs", json={"model_id": unet, "image_path": image})

    def chunk_job() -> tuple[str, bool]:
        response = job("chunk.ome.zarr")
        if response.status_code != 202:
            return refused_with(response, 422, "outside")
        done = wait_job(mallory, response.json()["id"], work.budget + SLACK_S)
        return f"202, then {done['status']}: {done['error']}"[:80], done["status"] == "failed"

    def upload_etc() -> tuple[str, bool]:
        params = {"filename": "etc.ome.tif"}
        return refused_with(mallory.post("/images", content=etc.read_bytes(), params=params),
                            422, "outside")  # fmt: skip

    return [
        ("job: OME-TIFF naming an absolute path", lambda: refused_with(job("abs.ome.tif"), 422,
                                                                      "outside"), True),
        ("job: OME-TIFF naming ../", lambda: refused_with(job("dotdot.ome.tif"), 422, "outside"),
         True),
        ("job: OME-Zarr array folder linked out",
         lambda: refused_with(job("folder.ome.zarr"), 422, "outside"), True),
        ("job: OME-Zarr chunk linked out", chunk_job, True),
        ("upload: OME-TIFF naming /etc/passwd", upload_etc, True),
    ]  # fmt: skip


def time_cases(work: Work, mallory: httpx.Client, server: Server) -> list:
    """(case, action, own) for models that run too long."""
    from scopeml.model.testing import allocating_onnx, endless_loop_onnx

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.server.slow_model import slow_onnx

    w = work.path
    endless = graph_container(w("s-endless.czann"), endless_loop_onnx(channels=2), 2)
    allocating = graph_container(w("s-alloc.czann"), allocating_onnx(channels=2), 2)
    # 300000 trips: ~0.3 s on a 32² probe tile, ~20 s on 512² (ONNX Runtime vectorises Abs:
    # 20000 trips ran 512² in ~1.3 s on an idle core, within the 5 s budget)
    slow_id = upload_model(mallory, graph_container(w("slow.czann"), slow_onnx(trips=300_000), 2))
    slow_id = slow_id.json()["id"]
    tifffile.imwrite(w("root") / "big2.ome.tif", np.zeros((2, 512, 512), np.float32),
                     metadata={"axes": "CYX"})  # fmt: skip

    def slow_tiles() -> tuple[str, bool]:
        def one(side: int) -> int:
            with server.client("mallory") as own:
                body = np.zeros((2, side, side), np.float32).tobytes()
                headers = {"X-Tile-Dtype": "<f4", "X-Tile-Shape": f"2,{side},{side}"}
                return own.post(f"/models/{slow_id}/predict", content=body,
                                headers=headers).status_code  # fmt: skip

        results: list[int] = []
        threads = [threading.Thread(target=lambda s=s: results.append(one(s))) for s in (512, 528)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(2 * work.budget + SLACK_S)
        return f"{sorted(results)} (time budget)", sorted(results) == [422, 422]

    def slow_job() -> tuple[str, bool]:
        body = {"model_id": slow_id, "image_path": "big2.ome.tif", "options": {"tile_size": 512}}
        job = mallory.post("/jobs", json=body).json()
        done = wait_job(mallory, job["id"], work.budget + SLACK_S)
        return f"{done['status']}: {done['error']}"[:80], "time budget" in (done["error"] or "")

    def cancel_job() -> tuple[str, bool]:
        body = {"model_id": slow_id, "image_path": "big2.ome.tif", "options": {"tile_size": 512}}
        job = mallory.post("/jobs", json=body).json()
        time.sleep(0.5)
        deleted = mallory.delete(f"/jobs/{job['id']}")
        gone = mallory.get(f"/jobs/{job['id']}").status_code
        return f"DELETE {deleted.status_code}, then GET {gone}", (deleted.status_code, gone) == (
            204,
            404,
        )

    return [
        ("upload: endless Loop model", lambda: refused_with(upload_model(mallory, endless), 422,
                                                           "time budget"), True),
        ("upload: graph allocating 1.7 GB", lambda: refused_with(upload_model(mallory, allocating),
                                                                422, "GiB"), True),
        ("predict x2: model past the time budget", slow_tiles, True),
        ("job: model past the time budget", slow_job, True),
        ("DELETE a running job", cancel_job, True),
    ]  # fmt: skip


def memory_cases(work: Work, mallory: httpx.Client, unet: str) -> list:
    """(case, action, own) for inputs that would grow memory: declared sizes, bombs, big tiles."""
    w = work.path
    lying = lying_tiff(w("s-lying.tif"))
    declared_zarr(w("root") / "huge.ome.zarr", (10**12, 10**12), (1024, 1024))
    declared_zarr(w("root") / "bigchunk.ome.zarr", (20000, 20000), (20000, 20000))
    wide = unet_container(w("s-overlap.czann"), min_overlap=100_000)
    tifffile.imwrite(w("root") / "plain.tif", np.zeros((256, 256), np.uint8))
    bomb_bytes = 256 * MB if work.quick else 2 * GB
    bomb, ratio = zip_bomb_container(w("s-bomb.czann"), bomb_bytes)

    def job(image: str, model: str = unet) -> tuple[str, bool]:
        response = mallory.post("/jobs", json={"model_id": model, "image_path": image})
        if response.status_code != 202:
            return refused_with(response, 422)
        done = wait_job(mallory, response.json()["id"], work.budget + SLACK_S)
        return f"202, then {done['status']}: {done['error']}"[:80], done["status"] == "failed"

    def overlap() -> tuple[str, bool]:
        response = upload_model(mallory, wide)
        if response.status_code != 201:
            return refused_with(response, 422)
        return job("plain.tif", response.json()["id"])

    def big_tile() -> tuple[str, bool]:
        tile = np.zeros((1, 1536, 1536), np.float32)  # 9.4 MB
        headers = {"X-Tile-Dtype": "<f4", "X-Tile-Shape": "1,1536,1536"}
        response = mallory.post(f"/models/{unet}/predict", content=tile.tobytes(), headers=headers)
        stopped = response.status_code == 422 and "time budget" in detail(response)
        outcome = f"{response.status_code} ({len(response.content) / MB:.1f} MB out)"
        held = response.status_code in (200, 413) or stopped
        return outcome + (", time budget" if stopped else ""), held

    params = {"filename": "lying.tif"}
    return [
        ("upload: TIFF declaring 10^6 x 10^6",
         lambda: refused_with(mallory.post("/images", content=lying.read_bytes(), params=params),
                              422), False),
        ("job: OME-Zarr declaring 10^12 x 10^12", lambda: job("huge.ome.zarr"), False),
        ("job: one declared 20000^2 chunk", lambda: job("bigchunk.ome.zarr"), False),
        ("model MinOverlap 100000 + job", overlap, False),
        (f"upload: zip bomb {bomb_bytes // MB} MB at ratio {ratio:.0f}",
         lambda: refused_with(upload_model(mallory, bomb), 422), False),
        ("predict: 9.4 MB tile within the body limit", big_tile, True),
    ]  # fmt: skip


def request_cases(work: Work, server: Server, mallory: httpx.Client, unet: str) -> list:
    """(case, action, own) for malformed requests, files on disk, uploads and the quota."""

    def overflow() -> tuple[str, bool]:
        headers = {"X-Tile-Dtype": "uint8", "X-Tile-Shape": "4611686018427387920,4"}
        response = mallory.post(f"/models/{unet}/predict", content=b"\0" * 64, headers=headers)
        return refused_with(response, 422)

    def big_json() -> tuple[str, bool]:
        body = {"model_id": "x" * (5 * MB)}
        response = mallory.post("/jobs", json=body)
        return f"{response.status_code}, {len(response.content)} bytes back", (
            response.status_code == 413 and len(response.content) < 1000
        )

    def echo() -> tuple[str, bool]:
        body = {"model_id": unet, "image_path": "a.tif", "options": {"normalize": "y" * 60_000}}
        response = mallory.post("/jobs", json=body)
        return f"{response.status_code}, {len(response.content)} bytes back", (
            response.status_code == 422 and len(response.content) < 2000
        )

    def private_files() -> tuple[str, bool]:
        files = [p for p in server.data.rglob("*") if not p.is_symlink()]
        open_ = [p for p in files if p.stat().st_mode & 0o077 and p.suffix != ".log"]
        names = ", ".join(str(p.relative_to(server.data)) for p in open_[:2])
        return f"{len(open_)} of {len(files)} readable by others {names}", not open_

    def quota() -> tuple[str, bool]:
        data = np.zeros((30 * MB,), np.uint8)
        path = work.path("q.tif")
        tifffile.imwrite(path, data.reshape(3 * 1024, 10 * 1024))
        codes, ids = [], []
        for _ in range(3):  # 64 MB quota: two fit, the third not
            response = mallory.post("/images", content=path.read_bytes(),
                                    params={"filename": "q.tif"})  # fmt: skip
            codes.append(response.status_code)
            if response.status_code == 201:
                ids.append(response.json()["id"])
        deleted = [mallory.delete(f"/images/{i}").status_code for i in ids]
        return f"uploads {codes}, deletes {deleted}", codes == [201, 201, 413] and deleted == [
            204,
            204,
        ]

    return [
        ("predict: tile shape whose product overflows", overflow, True),
        ("POST /jobs: 5 MB JSON body", big_json, True),
        ("POST /jobs: 422 with 60 KB of junk", echo, True),
        ("data files private (0600/0700)", private_files, True),
        ("upload quota, DELETE /images/{id}", quota, True),
    ]


# --- report -------------------------------------------------------------------------------------

HEADER = (
    f"{'where':<7}{'case':<46}{'outcome':<44}{'peak MB':>8}{'after':>7}{'s':>7}  "
    f"{'other user':<12}verdict"
)


def print_row(row: Row) -> None:
    after = "-" if row.after is None else f"{row.after / MB:.0f}"
    print(
        f"{row.where:<7}{row.case[:45]:<46}{row.outcome[:43]:<44}{row.peak / MB:>8.0f}"
        f"{after:>7}{row.seconds:>7.1f}  {row.served:<12}{row.verdict()}",
        flush=True,
    )
    if row.note and not row.held:
        print(f"{'':7}  └ {row.note}", flush=True)


def run_server_cases(work: Work) -> None:
    (work.path("root")).mkdir()
    (work.path("outside")).mkdir()
    server = Server(work, work.path("root"))
    try:
        with server.client("mallory") as mallory, server.client("bob") as bob:
            unet_path = unet_container(work.path("s-unet.czann"))
            unet = upload_model(mallory, unet_path).json()["id"]
            bob_model = upload_model(bob, unet_path).json()["id"]
            cases = [
                *confinement_cases(work, server, mallory, unet),
                *time_cases(work, mallory, server),
                *memory_cases(work, mallory, unet),
                *request_cases(work, server, mallory, unet),
            ]
            for case, action, own in cases:
                server_case(work, server, bob_model, case, action, 10.0, own)
            print(f"after all cases: Bob's tile {probe_tile(server, bob_model, 10.0)}")
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 256 MB zip bomb, no CLI bomb")
    parser.add_argument("--time-budget", type=float, default=5.0, help="seconds per model call")
    parser.add_argument("--only", choices=["cli", "server"], help="run one half")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scopeml-hostile-") as tmp:
        work = Work(Path(tmp), args.time_budget, args.quick)
        print(f"time budget {work.budget:g} s; limits: peak <= {MAX_PEAK / GB:.1f} GB, "
              f"time <= budget + {SLACK_S:g} s\n{HEADER}")  # fmt: skip
        if args.only != "server":
            run_cli_cases(work)
        if args.only != "cli":
            run_server_cases(work)
    held = sum(row.held for row in work.rows)
    missed = [row for row in work.rows if not row.held and row.own]
    print(f"\n{held} of {len(work.rows)} cases held; {len(missed)} of the server's own did not")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
