#!/usr/bin/env bash
# The main job: sets up what is missing (scripts/setup.sh --if-needed), then opens the demo notebook
# (the panel and the step-by-step teaching section) in JupyterLab. Without a GPU the notebook switches
# to the tiny random models by itself and says so; set VID2VID_MODELS=tiny to force them anywhere.
# Extra arguments go to `jupyter lab` (e.g. --port 8890).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --if-needed
VENV=${VENV:-.venv}
ROOT_FLAG=""; [ "$(id -u)" = 0 ] && ROOT_FLAG="--allow-root"  # containers and CI run as root
exec "$VENV/bin/jupyter" lab notebooks/vid2vid_demo.ipynb $ROOT_FLAG "$@"
