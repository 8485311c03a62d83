#!/usr/bin/env bash
# The main job: open the demo notebook (the panel and the step-by-step teaching section) in JupyterLab.
# Without a GPU the notebook switches to the tiny random models by itself and says so; set
# VID2VID_MODELS=tiny to force them anywhere. Extra arguments go to `jupyter lab` (e.g. --port 8890).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/jupyter-lab" ]; then
  echo "JupyterLab is not installed in $VENV: run 'bash scripts/setup.sh' first." >&2
  exit 1
fi
ROOT_FLAG=""; [ "$(id -u)" = 0 ] && ROOT_FLAG="--allow-root"  # containers and CI run as root
exec "$VENV/bin/jupyter" lab notebooks/vid2vid_demo.ipynb $ROOT_FLAG "$@"
