#!/usr/bin/env bash
# One command that sets up everything on a fresh machine: a virtual environment in .venv with torch
# (installed first and explicitly, so nothing resolves a multi-GB CUDA build by accident), the
# package with its test, modelscope and browser extras, and Debian's Chromium for the browser test.
#
#   bash scripts/setup.sh            # everything
#   SKIP_BROWSER=1 bash scripts/setup.sh   # no Chromium / JupyterLab browser test
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

case "$(uname -m)" in
  aarch64|arm64) TORCH="torch==2.9.1 torchvision==0.24.1" ;;
  *)             TORCH="torch==2.14.1 torchvision==0.29.1" ;;
esac
TORCH=${TORCH_SPEC:-$TORCH}

log() { printf '\n== %s\n' "$*"; }

if [ "${SKIP_BROWSER:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1; then
  log "Installing Debian's chromium (for the real-browser test)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "Creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
log "Installing $TORCH (first, on its own)"
$PIP install -q $TORCH
EXTRAS="test,modelscope"
[ "${SKIP_BROWSER:-0}" = "1" ] || EXTRAS="$EXTRAS,browser"
log "Installing vid2vid-widgets[$EXTRAS]"
# The torch pins ride along so no extra can move torch away from the build installed above.
$PIP install -q -e ".[$EXTRAS]" $TORCH
log "Done. Activate with: source $VENV/bin/activate"
