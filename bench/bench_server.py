"""Load test of the REST server on loopback, client-side tiling against local, schemathesis.

Everything runs on 127.0.0.1 and is bounded in time and count::

    python bench/bench_server.py                       # ~1-2 minutes on 2 cores
    python bench/bench_server.py --duration 30 --clients 8 --image 4096 --fuzz-seconds 120

Reports
-------
1. Tile prediction under load: ``--clients`` threads post ``1×T×T`` tiles for ``--duration``
   seconds: tiles/s, p50/p99 latency, errors (must be 0), mean micro-batch size (from
   ``/metrics``), against tiles/s of the same model called in-process from as many threads,
   one tile per call, run just before (the machine's load changes the absolute figures).
2. Client-side tiling: ``Client.segment`` (8 sending threads) of a ``--image``² uint16 image
   against local ``scopeml.api.segment`` with the same model file and options (default 2
   workers, and 8 like the client): wall times, throughput ratios, and whether the outputs are
   equal bit for bit.
3. schemathesis (if installed) against ``/openapi.json`` with the ``not_a_server_error`` check
   for ``--fuzz-seconds``: test cases run and 5xx answers (must be 0).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

MAX_DURATION_S = 30.0
MAX_REQUESTS_PER_CLIENT = 100_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data_dir: Path, port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "scopeml.server", "--data-dir", str(data_dir),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *args,
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start within 60 s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def make_model(path: Path, width: int) -> Path:
    from scopeml.model import convert_onnx
    from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo

    graph = tiny_unet_onnx(in_channels=1, n_classes=3, depth=2, width=width, seed=0)
    return convert_onnx(
        graph,
        path,
        classes=["background", "nucleus", "boundary"],
        min_overlap=unet_receptive_halo(2),
        model_type="MultiClassSemanticSegmentation",
    )


def load_test(url: str, token: str, model_id: str, args: argparse.Namespace) -> dict:
    """``clients`` threads, each posting tiles until the time is up."""
    from scopeml.client import Client

    duration = min(args.duration, MAX_DURATION_S)
    rng = np.random.default_rng(0)
    tiles = [(rng.random((1, args.tile, args.tile)) * 4000).astype(np.float32) for _ in range(8)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration

    def client_loop(index: int) -> None:
        with Client(url, token, max_connections=1) as client:
            for count in range(MAX_REQUESTS_PER_CLIENT):
                if time.perf_counter() >= stop_at:
                    return
                start = time.perf_counter()
                try:
                    client.predict_tile(model_id, tiles[(index + count) % len(tiles)])
                except Exception as err:  # counted, reported
                    with lock:
                        errors.append(f"{type(err).__name__}: {err}")
                    continue
                with lock:
                    latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 120)
    elapsed = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {
        "tiles": len(latencies),
        "seconds": elapsed,
        "tiles_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
    }


def local_tiles_per_s(model_path: Path, args: argparse.Namespace) -> float:
    """The same model in-process, ``clients`` threads calling ``predict`` on one tile each:
    the baseline of the load test (what the server adds is HTTP, decoding and batching)."""
    from scopeml.model import load_model

    model = load_model(model_path)
    rng = np.random.default_rng(0)
    tile = (rng.random((1, 1, args.tile, args.tile)) * 4000).astype(np.float32)
    model.predict(tile)
    duration = min(args.duration, MAX_DURATION_S)
    counts = [0] * args.clients
    stop_at = time.perf_counter() + duration

    def loop(index: int) -> None:
        while time.perf_counter() < stop_at and counts[index] < MAX_REQUESTS_PER_CLIENT:
            model.predict(tile)
            counts[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(args.clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 120)
    return sum(counts) / (time.perf_counter() - start)


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else float("nan")


def compare_segment(url: str, token: str, model_id: str, model_path: Path, work: Path, args):
    """Client-side tiled ``segment`` against the local engine on the same image and options."""
    import tifffile
    import zarr

    from scopeml.api import segment
    from scopeml.client import Client
    from scopeml.synthetic import synthetic_nuclei

    image, _ = synthetic_nuclei((args.image, args.image), density=0.0008, seed=1)
    image_path = work / "image.tif"
    tifffile.imwrite(image_path, image[0], tile=(256, 256))
    options = {"tile_size": args.segment_tile, "outputs": ["labels", "probabilities"]}
    start = time.perf_counter()
    local = segment(image_path, model_path, work / "local.ome.zarr", **options)
    local_s = time.perf_counter() - start
    start = time.perf_counter()
    segment(image_path, model_path, work / "local8.ome.zarr", workers=8, **options)
    local8_s = time.perf_counter() - start
    with Client(url, token) as client:
        start = time.perf_counter()
        remote = client.segment(
            image_path, model_id, work / "remote.ome.zarr", quiet=True, workers=8, **options
        )
        remote_s = time.perf_counter() - start
    equal = all(
        np.array_equal(
            zarr.open_array(local / name / "0", mode="r")[...],
            zarr.open_array(remote / name / "0", mode="r")[...],
        )
        for name in options["outputs"]
    )
    return {"local_s": local_s, "local8_s": local8_s, "remote_s": remote_s, "equal": equal}


def fuzz(url: str, token: str, model_id: str, work: Path, seconds: float) -> dict | None:
    """schemathesis with the not_a_server_error check; None when it is not installed."""
    exe = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    if not Path(exe).exists():
        return None
    config = work / "schemathesis.toml"
    config.write_text(f'[parameters]\n"path.model_id" = "{model_id}"\n')
    runs = [
        # everything but DELETE, with a real model id so predict reaches the model
        ["--exclude-method", "DELETE", "--max-time", str(max(1, int(seconds * 0.8)))],
        # DELETE last (it may delete the model)
        ["--include-method", "DELETE", "--max-time", str(max(1, int(seconds * 0.2)))],
    ]
    generated = passed = 0
    codes = []
    for extra in runs:
        command = [
            exe, "--config-file", str(config), "run", f"{url}/openapi.json",
            "-H", f"Authorization: Bearer {token}", "--checks", "not_a_server_error",
            "--workers", "2", "--seed", "1", "--no-color", "--phases", "coverage,fuzzing",
            "--generation-database", "none", *extra,
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 120, cwd=work
        )
        codes.append(done.returncode)
        match = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
        if match:
            generated += int(match.group(1))
            passed += int(match.group(2))
        else:
            print(done.stdout[-3000:], done.stderr[-2000:], file=sys.stderr)
    return {"generated": generated, "passed": passed, "exit_codes": codes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (max 30)")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--width", type=int, default=8, help="U-Net width of the model")
    parser.add_argument("--image", type=int, default=2048, help="side of the segment image")
    parser.add_argument("--segment-tile", type=int, default=256)
    parser.add_argument("--fuzz-seconds", type=float, default=60.0)
    parser.add_argument("--max-batch", type=int, default=8, help="server micro-batch limit")
    parser.add_argument("--predict-workers", type=int, default=2, help="server predict calls")
    parser.add_argument(
        "--user-predict-workers", type=int, default=None, help="of those, one user's at most"
    )
    args = parser.parse_args()

    from scopeml.client import Client
    from scopeml.server.database import Database

    work = Path(tempfile.mkdtemp(prefix="bench-server-"))
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    try:
        model_path = make_model(work / "unet.czann", args.width)
        db = Database(work / "data" / "scopeml.db")
        token = db.create_token("bench", admin=True)  # /metrics answers admin tokens only
        db.close()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(
            work / "data", port, work / "server.log", "--max-batch", str(args.max_batch),
            "--predict-workers", str(args.predict_workers),
            *(["--user-predict-workers", str(args.user_predict_workers)]
              if args.user_predict_workers else []),
        )  # fmt: skip
        try:
            with Client(url, token) as client:
                model_id = client.upload_model(model_path)["id"]
            print(
                f"server {url}, {os.cpu_count()} cores, model width {args.width}, depth 2, "
                f"max batch {args.max_batch}, predict workers {args.predict_workers} "
                f"(one user's at most {args.user_predict_workers or 'default'})"
            )

            baseline = local_tiles_per_s(model_path, args)
            load = load_test(url, token, model_id, args)
            text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}).text
            batches = metric(text, "scopeml_predict_batches_total")
            tiles = metric(text, "scopeml_tiles_predicted_total")
            print(
                f"\n[1] tiles {args.tile}x{args.tile}, {args.clients} clients, "
                f"{load['seconds']:.1f} s: {load['tiles_per_s']:.1f} tiles/s, "
                f"p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms, "
                f"errors {load['errors']} {load['first_error']}"
            )
            print(
                f"    mean micro-batch {tiles / batches:.2f} tiles; in-process model, same "
                f"threads, 1 tile per call: {baseline:.1f} tiles/s; "
                f"server/in-process = {load['tiles_per_s'] / baseline:.2f}"
            )

            seg = compare_segment(url, token, model_id, model_path, work, args)
            print(
                f"\n[2] segment {args.image}x{args.image} uint16, tile {args.segment_tile}: "
                f"local (default 2 workers) {seg['local_s']:.2f} s, local 8 workers "
                f"{seg['local8_s']:.2f} s, client-side tiled (8 workers) {seg['remote_s']:.2f} s"
            )
            print(
                f"    throughput remote/local = {seg['local_s'] / seg['remote_s']:.2f} "
                f"(same workers: {seg['local8_s'] / seg['remote_s']:.2f}), "
                f"bit-identical: {seg['equal']}"
            )

            if args.fuzz_seconds > 0:
                result = fuzz(url, token, model_id, work, args.fuzz_seconds)
                if result is None:
                    print("\n[3] schemathesis not installed: skipped (pip install schemathesis)")
                else:
                    failures = result["generated"] - result["passed"]
                    print(
                        f"\n[3] schemathesis not_a_server_error, {args.fuzz_seconds:.0f} s: "
                        f"{result['generated']} cases, {failures} with a 5xx "
                        f"(exit codes {result['exit_codes']})"
                    )
        finally:
            stop_server(server)
        return 0 if load["errors"] == 0 and seg["equal"] else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
