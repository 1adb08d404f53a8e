#!/usr/bin/env bash
# Set up a virtual environment with every extra and run lint + the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch for the [train] extra, pinned to the version the tests were run with. Where pip's
# registry has a CPU build of it (as our CI's does), that is what comes; from the public index a
# Linux torch brings its CUDA libraries (GBs): install the CPU build first as PyTorch's site
# shows, and this line keeps it.
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test,train,server,czi,dask,parquet,formats,bioimageio,napari]"
ruff check src tests bench
ruff format --check src tests bench
# --dist loadscope: a module's tests share one worker, so a module-scoped fixture (a server
# process, a trained model) is made once, not once per worker
python -m pytest -q -n auto --dist loadscope "$@"
