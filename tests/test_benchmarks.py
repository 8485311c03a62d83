"""Smoke tests: every benchmark script still runs in its cheapest mode, so the scripts don't rot.

No timing is asserted anywhere: the machines these run on are shared and their speed varies. Only
exit codes and the lines that say what was measured (or why it was skipped) are checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_script(name: str, *args: str, env: dict | None = None, timeout: float = 900) -> str:
    script = BENCHMARKS / name
    assert script.exists(), f"benchmarks/{name} is missing"
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{name} {' '.join(args)} exited {done.returncode}:\n{output[-4000:]}"
    return done.stdout


@pytest.mark.slow  # importing torch alone takes 5-10 s on a loaded 2-core machine
def test_bench_gpu_skips_cleanly_without_cuda():
    # CUDA hidden, so the skip path is the one tested on every machine (a GPU run takes minutes).
    out = run_script("bench_gpu.py", env={"CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert "bench_gpu: skipped: no CUDA GPU here" in out


@pytest.mark.slow
def test_bench_gpu_cpu_smoke():
    out = run_script("bench_gpu.py", "--cpu-smoke", "--frames", "4", env={"CUDA_VISIBLE_DEVICES": ""})
    assert "diffusers fp32, VAE slices of 8 (default)" in out
    assert "diffusers fp32, no VAE slicing" in out
    assert "CPU offload" in out
    assert "BLIP base float32" in out
    assert "modelscope" in out  # measured, or skipped with the reason when the extra is missing
    assert "not measured in --cpu-smoke" in out
    rows = [line for line in out.splitlines() if line.startswith(("diffusers fp32", "modelscope fp32"))]
    assert rows and not any("  [" in row for row in rows), out  # "[reason]" marks a row that failed


@pytest.mark.slow
def test_bench_residency_quick(_tiny_models_root):
    out = run_script("bench_residency.py", "--quick")
    for step in ("1. pipeline A, first run", "2. pipeline A, second run", "3. pipeline B (new object), first run",
                 "4. panel 1, first", "5. panel 2, first"):
        assert step in out
    assert "REGISTRY.total_loads=2" in out  # a captioner and a generator, loaded once each
    assert "loads after the first run: 0" in out
    assert "residency target (no model loads after the first run): MET" in out


@pytest.mark.slow
def test_bench_downloads():
    out = run_script("bench_downloads.py", timeout=300)
    assert "first run on a Colab T4, default backend" in out
    assert "unet 1411" in out  # the published architecture, counted on the meta device


@pytest.mark.slow
def test_bench_video_quick():
    out = run_script("bench_video.py", "--quick", timeout=600)
    assert "targets" in out


@pytest.mark.slow
def test_bench_captioning_smallest():
    out = run_script("bench_captioning.py", "--small", "--k", "2", "--beams", "1", "--tokens", "2",
                     "--device", "cpu", timeout=900)
    assert "toy-size (--small) BLIP" in out and "total (generate)" in out


@pytest.mark.slow
def test_bench_loop_overhead_smallest(_tiny_models_root):
    from vid2vid_widgets.tiny import tiny_model_path

    # The tiny model has the same folder layout as the mid-size one the benchmark builds: reuse it.
    out = run_script("bench_loop_overhead.py", "--folder", tiny_model_path("text-to-video"), "--frames", "2",
                     "--size", "32", "--steps", "1", "--rounds", "1", "--repeats", "1", "--paired", "0", timeout=900)
    assert out.strip()


@pytest.mark.slow
def test_bench_backends_smallest(_tiny_models_root):
    out = run_script("bench_backends.py", "--frames", "2", "--size", "64", "--steps", "2", "--repeats", "1")
    assert "diffusers  load" in out and "generate median" in out
    assert "modelscope" in out  # measured, or skipped with the reason when the extra is missing


@pytest.mark.slow
def test_bench_video_to_video_quick():
    out = run_script("bench_video_to_video.py", "--quick")
    assert "time: prepare input" in out and "% at 25 steps" in out
    assert "memory: encode+decode of 4 frames" in out and "slices of 4" in out


@pytest.mark.slow
def test_bench_batch_quick(_tiny_models_root):
    out = run_script("bench_batch.py", "--quick", timeout=600)
    for row in ("plain loop", "local engine, no overlap", "local engine, overlap", "Ray, 1 actor", "Ray, 2 actors"):
        assert row in out
    assert "videos/min" in out


@pytest.mark.slow
def test_bench_preview_quick(_tiny_models_root):
    out = run_script("bench_preview.py", "--quick", timeout=600)
    assert "1. live preview every 5 steps (2 previews in 10 steps)" in out
    assert "% of a run (target < 2 %)" in out
    assert "speed-up of batching:" in out


@pytest.mark.slow
def test_bench_presets_quick():
    out = run_script("bench_presets.py", "--quick", timeout=900)
    for name in ("modelscope-1.7b", "zeroscope-576w", "animatediff", "animatediff-lightning"):
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert "GB" in row and "[" not in row, row  # "[reason]" marks a preset that failed to load or step
    assert "not measured here: modelscope-original" in out
    assert "loading RAM target (< 6 GB for every preset, every weight read): MET" in out


@pytest.mark.slow
def test_bench_captioners_quick(_tiny_models_root):
    out = run_script("bench_captioners.py", "--quick", "--device", "cpu", timeout=900)
    assert "BLIP (tiny)" in out and "SmolVLM2 (tiny)" in out and "vs BLIP" in out
