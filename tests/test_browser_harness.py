"""The browser harness proves itself on plain ipywidgets (FileUpload, Video, Textarea, Button).

Temporary: tests/test_browser.py drives the real panel the same way; this stand-in stays only until
that test covers everything here.
"""

from __future__ import annotations

import sys
import time

import pytest

import _browser  # tests/ is on sys.path: pytest's default "prepend" import mode, no __init__.py

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STANDIN_CELLS = [
    "import sys, ipywidgets as w\nfrom IPython.display import display",
    """\
upload = w.FileUpload(accept="video/*", description="Upload video")
upload.add_class("standin-upload")
video = w.Video(format="mp4", width=320)
video.add_class("standin-video")
caption = w.Textarea(placeholder="caption")
caption.add_class("standin-caption")
button = w.Button(description="Generate")
button.add_class("standin-generate")
status = w.Label("waiting")
status.add_class("standin-status")
clicked = []

def on_upload(change):
    if change["new"]:
        item = change["new"][0]
        video.value = bytes(item["content"])
        status.value = f"received {item['name']} {item['size']}"

def on_click(_):
    clicked.append(caption.value)
    status.value = "generate: " + caption.value

upload.observe(on_upload, "value")
button.on_click(on_click)
display(w.VBox([upload, video, caption, button, status]))""",
]


@pytest.fixture(params=_browser.FLAVOURS)
def server(request, tmp_path):
    _browser.skip_or_fail_if_missing(request.param)
    with _browser.jupyter_server(request.param, tmp_path / "jupyter") as server:
        yield server


def test_harness_drives_plain_widgets(server, tmp_path, sample_videos):
    clip = sample_videos / "carphone_pristine.mp4"
    _browser.write_notebook(server.root_dir / "standin.ipynb", STANDIN_CELLS)
    started = time.monotonic()
    with _browser.chromium_page(tmp_path / "chromium") as page, _browser.report_on_failure(
        page, server, f"standin-{server.flavour}"
    ):
        _browser.open_notebook(page, server, "standin.ipynb")
        _browser.run_all_cells(page)
        assert _browser.kernel_json(page, "sys.executable") == sys.executable

        _browser.upload_file(page, ".standin-upload", clip)
        page.wait_for_selector(f".standin-status:has-text('received {clip.name}')", timeout=30_000)
        assert _browser.kernel_json(page, "len(upload.value[0]['content'])") == clip.stat().st_size

        state = _browser.wait_for_video(page, "video.standin-video")
        assert state["videoHeight"] == 144  # 176x144 stored; its non-square pixels widen it

        box = page.locator(".standin-caption textarea")
        box.fill("a man talks on the phone in a car")
        page.click(".standin-generate")
        page.wait_for_selector(".standin-status:has-text('generate: a man talks')", timeout=15_000)
        assert _browser.kernel_json(page, "clicked") == ["a man talks on the phone in a car"]
        page.screenshot(path=str(_browser.artifacts_dir() / f"standin-{server.flavour}.png"))
    print(f"{server.flavour}: {time.monotonic() - started:.1f} s in the browser")
