#!/usr/bin/env bash
# The tests: sets up what is missing (scripts/setup.sh --if-needed), then runs the whole suite on the
# CPU with tiny models, the real-browser test included. Arguments go to pytest, e.g.
#   bash scripts/test.sh -m "not slow and not browser"     # the fast core
#   bash scripts/test.sh tests/test_video.py -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --if-needed
exec "${VENV:-.venv}/bin/python" -m pytest "$@"
