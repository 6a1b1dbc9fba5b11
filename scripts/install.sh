#!/usr/bin/env bash
# Install what the server, the tests and the demo need: system tools, then a virtualenv.
# CPU-only torch is pinned here; a GPU host installs a CUDA build of torch instead (README).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v ffmpeg >/dev/null || ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends ffmpeg espeak-ng sox libsndfile1 >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/pip install -q -e '.[dev]'
echo "installed into .venv"
