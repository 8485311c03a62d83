#!/usr/bin/env bash
# One command that sets up everything on a fresh machine: a virtual environment in .venv with torch
# (installed first and explicitly, so nothing resolves a multi-GB CUDA build by accident), the
# package with its test, modelscope, ray and browser extras, and Debian's Chromium for the browser test.
#
#   bash scripts/setup.sh                  # everything
#   SKIP_BROWSER=1 bash scripts/setup.sh   # no Chromium / JupyterLab browser test
#   bash scripts/setup.sh --if-needed      # only when .venv is missing or older than pyproject.toml
#                                          # and this script (what demo.sh and test.sh call first)
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

EXTRAS="test,modelscope,ray"
[ "${SKIP_BROWSER:-0}" = "1" ] || EXTRAS="$EXTRAS,browser"
# What the set-up depends on: when none of it changed since the last complete set-up, there is nothing to do.
STAMP="$VENV/.vid2vid-setup"
WANT="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16) $TORCH [$EXTRAS]"
if [ "${1:-}" = "--if-needed" ] && [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ]; then
  exit 0
fi

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
log "Installing vid2vid-widgets[$EXTRAS]"
# The torch pins ride along so no extra can move torch away from the build installed above.
$PIP install -q -e ".[$EXTRAS]" $TORCH
echo "$WANT" > "$STAMP"  # written last: an interrupted set-up runs again next time
log "Done. Activate with: source $VENV/bin/activate"
