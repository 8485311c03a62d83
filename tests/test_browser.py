"""A person's path through the panel, in a real JupyterLab / Notebook 7 and a real headless Chromium.

Upload a real video through the panel's own upload button, wait for its caption, replace it with
typed words, press Generate, watch the progress bar reach the end, and check in the page that the
browser really decoded both videos; then a broken file shows a readable error, and a good run still
works after it. Screenshots land in ``$VID2VID_ARTIFACTS/browser`` (else ``artifacts/browser``).

Run alone with ``pytest -m browser``. Needs Debian's chromium and the [browser] extra (see README).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

import _browser  # tests/ is on sys.path: pytest's default "prepend" import mode, no __init__.py

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Small generation settings: tiny random models on a CPU, a few seconds per run.
# Kept in a list so a failure demo can add a cell (e.g. one that breaks the encoder).
PANEL_CELLS = [
    "import sys\nfrom IPython.display import display\nfrom vid2vid_widgets import Vid2VidPanel",
    "panel = Vid2VidPanel(models='tiny', num_frames=8, num_steps=2, height=64, width=64, caption_frames=2,\n"
    "                     preview_every=1)\n"
    "display(panel)",
]

FIRST_WORDS = "a red bicycle rides along a sunny beach"
SECOND_WORDS = "a man on the phone in a train at night"
# Torch imports, tiny models are built and loaded on the first run: generous on a busy 2-core CI box.
JOB_TIMEOUT_S = 240

PANEL = ".vid2vid-panel"
UPLOAD = "button.vid2vid-upload, .vid2vid-upload"
CAPTION_BOX = ".vid2vid-caption textarea"
GENERATE = "button.vid2vid-generate"
INPUT_VIDEO = "video.vid2vid-input"
OUTPUT_VIDEO = "video.vid2vid-output"
HISTORY_ROWS = ".vid2vid-history .vid2vid-history-row"
ERROR = ".vid2vid-error"

# Records every progress bar width and label the page shows, so the test sees the bar move
# even when a run is over between two polls; and every picture the live preview showed.
WATCH_PROGRESS_JS = """
() => {
  const seen = window.__vid2vidProgress = [];
  const pictures = window.__vid2vidPreviews = [];
  const panel = document.querySelector('.vid2vid-panel');
  const record = () => {
    const img = panel.querySelector('img.vid2vid-preview, .vid2vid-preview img');
    const src = img ? img.getAttribute('src') : '';
    if (src && pictures[pictures.length - 1] !== src) pictures.push(src);
    const bar = panel.querySelector('.vid2vid-progress .progress-bar');
    const label = panel.querySelector('.vid2vid-progress-label');
    const entry = (bar ? bar.style.width : '?') + ' | ' + (label ? label.textContent : '');
    if (!seen.length || seen[seen.length - 1] !== entry) seen.push(entry);
  };
  new MutationObserver(record).observe(panel, {subtree: true, childList: true, attributes: true,
                                               characterData: true});
  record();
}
"""

# What the panel shows right now, for waits and for failure messages.
PANEL_STATE_JS = """
() => {
  const q = (s) => document.querySelector(s);
  const text = (s) => (q(s) ? q(s).textContent.trim() : null);
  const bar = q('.vid2vid-progress .progress-bar');
  return {
    status: text('.vid2vid-status'),
    error: text('.vid2vid-error'),
    progress: bar ? bar.style.width : null,
    progressLabel: text('.vid2vid-progress-label'),
    caption: q('.vid2vid-caption textarea') ? q('.vid2vid-caption textarea').value : null,
    generateEnabled: !!q('button.vid2vid-generate') && !q('button.vid2vid-generate').disabled,
    uploadEnabled: !!q('.vid2vid-upload') && !q('.vid2vid-upload').disabled,
    historyRows: document.querySelectorAll('.vid2vid-history .vid2vid-history-row').length,
    outputSrc: q('video.vid2vid-output') ? q('video.vid2vid-output').currentSrc : null,
    inputSrc: q('video.vid2vid-input') ? q('video.vid2vid-input').currentSrc : null,
  };
}
"""


@pytest.fixture(params=_browser.FLAVOURS)
def server(request, tmp_path):
    _browser.skip_or_fail_if_missing(request.param)
    started = time.monotonic()
    with _browser.jupyter_server(request.param, tmp_path / "jupyter") as server:
        print(f"\njupyter {request.param} answered in {time.monotonic() - started:.1f} s")
        yield server
        stopping = time.monotonic()
    print(f"jupyter {request.param} stopped in {time.monotonic() - stopping:.1f} s")


def panel_state(page) -> dict:
    return page.evaluate(PANEL_STATE_JS)


def wait_for_panel(page, condition_js: str, what: str, arg=None, timeout: float = JOB_TIMEOUT_S) -> dict:
    """Wait until ``condition_js(state, arg)`` holds for the panel's state; a failure says what it saw.

    The panel's error line ends every wait early: a job that failed will not finish later.
    """
    deadline = time.monotonic() + timeout
    check = f"([state, arg]) => ({condition_js})"
    while True:
        state = panel_state(page)
        if page.evaluate(check, [state, arg]):
            return state
        if state["error"]:
            raise AssertionError(f"the panel showed an error while waiting for {what}: {state['error']!r}\n{state}")
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}; the panel shows:\n{json.dumps(state, indent=1)}")
        time.sleep(0.2)


def panel_details(page) -> str:
    """The widget's own record of what went wrong (traceback in 'Details'), from the kernel."""
    return "--- panel (from the kernel) ---\n" + _browser.kernel_execute(
        page,
        "print('last_error:', repr(panel.last_error))\n"
        "print('status:', panel.status.value)\n"
        "for o in panel.log_output.outputs: print(o.get('text', o))",
    )


def screenshot(page, flavour: str, name: str) -> Path:
    path = _browser.artifacts_dir(flavour) / f"{name}.png"
    page.locator(PANEL).screenshot(path=str(path), timeout=20_000)
    return path


def type_caption(page, words: str) -> None:
    """Replace the caption the way a person does: select all, type."""
    box = page.locator(CAPTION_BOX)
    box.click()
    box.press("ControlOrMeta+a")
    box.press_sequentially(words, delay=5)
    box.blur()


def run_json_files(server) -> list[dict]:
    found = sorted(server.root_dir.glob("vid2vid-runs/**/run.json"))
    return [json.loads(path.read_text()) for path in found]


def test_person_path_through_the_panel(server, tmp_path, sample_videos, bikes):
    flavour = server.flavour
    second_clip = sample_videos / "carphone_pristine.mp4"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is a text file wearing an .mp4 name\n" * 200)
    _browser.write_notebook(server.root_dir / "panel.ipynb", PANEL_CELLS)
    shots: list[Path] = []
    started = last = time.monotonic()
    phases: list[str] = []

    def phase(name: str) -> None:  # timings printed at the end: where a slow CI run spent its time
        nonlocal last
        now = time.monotonic()
        phases.append(f"{name} {now - last:.1f} s")
        last = now

    with _browser.chromium_page(tmp_path / "chromium") as page, _browser.report_on_failure(
        page, server, f"panel-{flavour}", extra=lambda: panel_details(page)
    ):
        # Run the notebook.
        _browser.open_notebook(page, server, "panel.ipynb")
        _browser.run_all_cells(page)
        assert _browser.kernel_json(page, "sys.executable") == sys.executable, "kernel is not this venv's Python"
        page.wait_for_selector(PANEL, state="visible", timeout=30_000)
        page.evaluate(WATCH_PROGRESS_JS)
        shots.append(screenshot(page, flavour, "1-empty"))
        phase("open+run notebook")

        # Upload a real video through the panel's own button; wait for the preview and the caption.
        _browser.upload_file(page, UPLOAD, bikes)
        wait_for_panel(page, "state.caption && state.generateEnabled && state.uploadEnabled",
                       "the caption of bikes.mp4")
        _browser.wait_for_video(page, INPUT_VIDEO)
        machine_caption = page.locator(CAPTION_BOX).input_value()
        assert machine_caption.strip(), "the caption box is empty after captioning"
        phase("upload+caption")

        # Replace the caption with typed words and generate.
        type_caption(page, FIRST_WORDS)
        assert page.locator(CAPTION_BOX).input_value() == FIRST_WORDS
        shots.append(screenshot(page, flavour, "2-before-generate"))
        page.evaluate("() => { window.__vid2vidProgress.length = 0; window.__vid2vidPreviews.length = 0; }")
        page.click(GENERATE)
        state = wait_for_panel(page, "state.historyRows >= 1 && state.generateEnabled", "the first run")
        phase("generate")

        # The progress bar moved through the denoising steps and reached the end.
        assert state["progress"] == "100%", state
        seen = page.evaluate("() => window.__vid2vidProgress")  # "<bar width> | <label>" as shown
        generating = [entry for entry in seen if "| Generating:" in entry]
        assert any(entry.startswith("100% | Generating: 2 of 2") for entry in generating), seen
        assert any(not entry.startswith("100%") for entry in generating), f"the bar never moved: {seen}"
        # The live preview showed a new picture after each of the 2 steps, and the browser drew it.
        pictures = page.evaluate("() => window.__vid2vidPreviews")
        assert len(pictures) >= 2, f"the preview image did not change during the run: {pictures}"
        drawn = page.evaluate("() => { const i = document.querySelector('img.vid2vid-preview, .vid2vid-preview img');"
                              " return i ? [i.naturalWidth, i.naturalHeight] : null; }")
        assert drawn and drawn[0] > drawn[1] > 0, drawn  # a strip of frames side by side

        # In the page: both videos decoded by the browser, the typed words kept, the run in history.
        output_state = _browser.wait_for_video(page, OUTPUT_VIDEO)
        assert output_state["videoWidth"] == 64 and output_state["duration"] > 0, output_state
        input_state = _browser.wait_for_video(page, INPUT_VIDEO)
        assert input_state["videoWidth"] > 0 and input_state["duration"] > 0, input_state
        assert page.locator(CAPTION_BOX).input_value() == FIRST_WORDS
        seed_text = page.locator(".vid2vid-seed-used").inner_text()
        match = re.search(r"Seed used:\s*(\d+)", seed_text)
        assert match, f"no seed shown after the run: {seed_text!r}"
        seed = int(match.group(1))
        rows = page.locator(HISTORY_ROWS)
        assert rows.count() == 1
        row_text = rows.first.inner_text()
        assert FIRST_WORDS in row_text and f"seed {seed}" in row_text, row_text
        # ...and the run on disk says the same (the kernel's cwd is the server root).
        (record,) = run_json_files(server)
        assert record["settings"]["prompt"] == FIRST_WORDS and record["settings"]["seed"] == seed, record
        assert _browser.kernel_json(page, "panel.last_result.settings.prompt") == FIRST_WORDS
        page.wait_for_timeout(300)  # let the output play a few frames for the picture
        shots.append(screenshot(page, flavour, "3-after-generate"))
        first_output_src = output_state["src"]

        # A broken file: a readable error in the panel, and what was shown stays.
        _browser.upload_file(page, UPLOAD, broken)
        page.wait_for_function(
            "() => { const e = document.querySelector('.vid2vid-error'); return e && e.textContent.trim(); }",
            timeout=JOB_TIMEOUT_S * 1000,
        )
        error_text = page.locator(ERROR).inner_text().strip()
        assert "broken.mp4" in error_text, error_text
        assert "Traceback" not in error_text and len(error_text) < 400, error_text
        page.wait_for_function(
            "() => !document.querySelector('button.vid2vid-generate').disabled", timeout=60_000
        )
        assert page.locator(CAPTION_BOX).input_value() == FIRST_WORDS
        _browser.wait_for_video(page, INPUT_VIDEO)
        _browser.wait_for_video(page, OUTPUT_VIDEO)
        shots.append(screenshot(page, flavour, "4-bad-file"))
        phase("checks+bad file")

        # A good run still works after it.
        _browser.upload_file(page, UPLOAD, second_clip)
        # The panel clears its error line when it starts a job: that is the sign the upload arrived.
        page.wait_for_function(
            "() => !document.querySelector('.vid2vid-error').textContent.trim()", timeout=60_000
        )
        wait_for_panel(page, "state.caption !== arg && state.generateEnabled && state.uploadEnabled",
                       "the caption of carphone_pristine.mp4", arg=FIRST_WORDS)
        type_caption(page, SECOND_WORDS)
        page.click(GENERATE)
        wait_for_panel(page, "state.historyRows >= 2 && state.generateEnabled", "the second run")
        output_state = _browser.wait_for_video(page, OUTPUT_VIDEO)
        assert output_state["src"] != first_output_src, "the output player still shows the first run"
        assert SECOND_WORDS in page.locator(HISTORY_ROWS).first.inner_text()  # newest first
        assert [r["settings"]["prompt"] for r in run_json_files(server)] == [FIRST_WORDS, SECOND_WORDS]
        shots.append(screenshot(page, flavour, "5-second-run"))
        phase("second run")

    print(f"\n{flavour}: {time.monotonic() - started:.1f} s in the browser ({', '.join(phases)}); screenshots:")
    for shot in shots:
        print(f"  {shot}")
