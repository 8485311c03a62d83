#!/usr/bin/env bash
# Run the core tests (-m "not browser and not slow") against a fixed set of older library versions,
# installed into a side folder that goes first on PYTHONPATH, so .venv keeps its own versions.
#
#   bash scripts/test_versions.sh colab    # what Google Colab preinstalls
#   bash scripts/test_versions.sh lowest   # the lowest versions pyproject.toml claims
#
# Needs .venv from scripts/setup.sh (VENV=... to use another one). Extra arguments go to pytest.
# The side folder is a fresh temporary one, removed afterwards; set KEEP_DIR=path to keep and reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
SET=${1:?usage: scripts/test_versions.sh colab|lowest [pytest args]}
shift
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

case "$SET" in
  colab)
    # Colab's GPU image: ipywidgets 7.7.1, diffusers 0.39, transformers 5.15 (shared notes). Alongside
    # them, the companions that were current when transformers 5.15.1 came out (2026-08-19) and fit
    # its requirements: huggingface_hub 1.28.0 (newest 1.x then; transformers 5.15 needs >=1.5,<2),
    # tokenizers 0.22.2 (transformers 5.15 needs >=0.22,<=0.23.0), accelerate 1.14.0 (newest then).
    # safetensors (0.8), numpy, pillow, av, ipython and torch stay as installed in .venv.
    PINS=(
      "ipywidgets==7.7.1" "ipython-genutils==0.2.0"
      "diffusers==0.39.0" "transformers==5.15.1"
      "huggingface_hub==1.28.0" "tokenizers==0.22.2" "accelerate==1.14.0"
    )
    ;;
  lowest)
    # The lower bounds in pyproject.toml. Where no wheel for this Python (3.11) exists, the lowest one
    # that has one: numpy 1.23.2 (not 1.23.0), pillow 9.3.0 (not 9.0). Companions those need:
    # tokenizers 0.19 (transformers 4.40), scipy 1.11 (.venv's scipy needs numpy>=1.25; diffusers
    # imports scipy when present), IPython 7's decorator/backcall/pickleshare, ipython-genutils.
    # IPython 7.23.1, not 7.23.0: .venv's ipykernel (the notebook tests' kernel) needs 7.23.1.
    # pandas 2.2.3 (the [ray] extra's table library): .venv's pandas 3 needs numpy>=2, and 2.2.3 is the
    # newest that still runs on numpy 1.23.2 (with pytz, which pandas 3 dropped); pyarrow 17 likewise
    # (from 18 on it needs numpy 2).
    PINS=(
      "ipywidgets==7.7.0" "ipython-genutils==0.2.0"
      "diffusers==0.30.0" "transformers==4.40.0" "tokenizers==0.19.1"
      "huggingface_hub==0.23.2" "accelerate==0.30.0" "safetensors==0.4.1"
      "numpy==1.23.2" "pillow==9.3.0" "av==18.0.0" "scipy==1.11.4"
      "ipython==7.23.1" "decorator==5.1.1" "backcall==0.2.0" "pickleshare==0.7.5" "pandas==2.2.3" "pytz==2024.2" "pyarrow==17.0.0"
    )
    ;;
  *) echo "unknown set '$SET' (colab or lowest)" >&2; exit 2 ;;
esac

start=$(date +%s)
if [ -n "${KEEP_DIR:-}" ]; then
  DIR=$KEEP_DIR; mkdir -p "$DIR"
else
  DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
fi
echo "== versions set '$SET': installing ${PINS[*]} into $DIR"
"$PY" -m pip install -q --disable-pip-version-check --no-deps --upgrade --target "$DIR" "${PINS[@]}"
echo "installed in $(( $(date +%s) - start )) s"

# The repository goes on the path too, so the code under test is this checkout's whatever .venv holds.
export PYTHONPATH="$DIR:$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - "$PWD" "${PINS[@]}" <<'EOF'
import sys, importlib
mods = ["vid2vid_widgets", "torch", "diffusers", "transformers", "huggingface_hub", "tokenizers",
        "accelerate", "safetensors", "ipywidgets", "IPython", "av", "numpy", "PIL"]
found = {m: importlib.import_module(m) for m in mods}
assert found["vid2vid_widgets"].__file__.startswith(sys.argv[1]), found["vid2vid_widgets"].__file__
print("tested versions: " + " ".join(f"{m}={getattr(found[m], '__version__', '?')}" for m in mods[1:]))
for pin in sys.argv[2:]:  # the side folder must win over .venv's own copies
    name, want = pin.split("==")
    if name in found:
        assert found[name].__version__ == want, f"{name} {found[name].__version__} imported, {want} pinned"
EOF
status=0
"$PY" -m pytest -m "not browser and not slow" -q -p no:cacheprovider "$@" || status=$?
echo "versions set '$SET' took $(( $(date +%s) - start )) s (install + tests)"
exit $status
