"""A real JupyterLab (or Notebook 7) server and a headless Chromium, for end-to-end panel tests.

Used by the tests marked ``browser``. Everything here is isolated from the person's own Jupyter setup:
config, runtime, settings and workspaces live in a temporary folder, and the kernel is a ``python3``
kernelspec written for *this* interpreter and put first on ``JUPYTER_PATH``, so a stale user-level
``python3`` kernelspec pointing at some other Python cannot hijack the run.

Teardown always happens (context managers with ``finally``): the server is asked to shut down over
its REST API (which also stops its kernels), then its process group is terminated, then anything it
started that is still alive is killed.

Nothing here knows about the panel: the tests build notebooks from plain source strings.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]

# Flags from notes/FACTS.md: without the networking ones Chromium keeps trying to reach hosts that
# CI cannot reach. Autoplay without a gesture lets the Video widgets really play, not just load.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
]

# The uploaded file travels in one websocket message; the server's default cap is 10 MiB.
WEBSOCKET_MAX_MESSAGE_SIZE = 200 * 1024 * 1024

FLAVOURS = ("lab", "notebook")


def artifacts_dir(*parts: str) -> Path:
    """Where screenshots go: ``$VID2VID_ARTIFACTS/browser``, else ``artifacts/browser`` (git-ignored)."""
    root = Path(os.environ.get("VID2VID_ARTIFACTS") or REPO_ROOT / "artifacts")
    folder = root.joinpath("browser", *parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_path() -> str | None:
    """Debian's ``chromium`` (never a Playwright-downloaded browser)."""
    return os.environ.get("VID2VID_CHROMIUM") or shutil.which("chromium")


def missing_requirements(flavour: str = "lab") -> list[str]:
    """What this machine lacks to run the browser tests against ``flavour`` (empty when all is there)."""
    import importlib.util

    missing = []
    if chromium_path() is None:
        missing.append("chromium (apt-get install -y chromium)")
    needed = [
        ("playwright", "pip install playwright"),
        ("jupyterlab", "pip install 'jupyterlab>=4,<5'"),
        ("ipykernel", "pip install ipykernel"),
        ("psutil", "pip install psutil"),
    ]
    if flavour == "notebook":
        needed.append(("notebook", "pip install 'notebook>=7'"))
    for module, hint in needed:
        if importlib.util.find_spec(module) is None:
            missing.append(hint)
    return missing


def skip_or_fail_if_missing(flavour: str) -> None:
    """Skip when the browser tools are missing; fail instead where CI sets VID2VID_REQUIRE_BROWSER=1."""
    import pytest

    missing = missing_requirements(flavour)
    if not missing:
        return
    message = f"the browser test ({flavour}) needs: " + ", ".join(missing)
    if os.environ.get("VID2VID_REQUIRE_BROWSER") == "1":
        pytest.fail(message + " (VID2VID_REQUIRE_BROWSER=1)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Notebook files


def write_notebook(path: Path, cells: Sequence[str]) -> Path:
    """A notebook of code cells, with the kernelspec set (without it Lab asks which kernel to use).

    Plain JSON (nbformat 4.5): importing nbformat costs seconds (its JSON-schema formats).
    """
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"cell-{index}",
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for index, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1))
    return path


# --------------------------------------------------------------------------------------------
# The server


@dataclass
class JupyterServer:
    flavour: str
    base_url: str
    token: str
    root_dir: Path
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    def notebook_url(self, name: str) -> str:
        route = "lab/tree" if self.flavour == "lab" else "notebooks"
        return f"{self.base_url}/{route}/{name}?token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 5) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log(self, last_lines: int = 200) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError as error:
            return f"(no server log: {error})"
        return "\n".join(lines[-last_lines:])


def _isolated_env(home: Path) -> dict[str, str]:
    """Environment for the server and its kernels: this Python, no user Jupyter state, no news."""
    from ipykernel.kernelspec import write_kernel_spec

    prefix = home / "kernel-prefix"
    # What `python -m ipykernel install --prefix <prefix> --name python3` writes (kernel.json with
    # argv[0] = sys.executable), minus its warning that the prefix is not on the default path.
    kernels = prefix / "share" / "jupyter" / "kernels"
    kernels.mkdir(parents=True, exist_ok=True)
    write_kernel_spec(path=str(kernels / "python3"), overrides={"display_name": "Python 3 (vid2vid test)"})

    config = home / "config"
    settings = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    # No "official Jupyter news?" toast, no requests to jupyter.org from the server.
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )

    env = dict(os.environ)
    env.update(
        JUPYTER_PATH=str(prefix / "share" / "jupyter"),
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    for name in ("JUPYTER_TOKEN", "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
        env.pop(name, None)
    return env


def _server_command(flavour: str, port: int, token: str, root_dir: Path) -> list[str]:
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, not {flavour!r}")
    module = "jupyterlab" if flavour == "lab" else "notebook"
    tornado_settings = json.dumps({"websocket_max_message_size": WEBSOCKET_MAX_MESSAGE_SIZE})
    return [
        sys.executable, "-m", module,
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        f"--ServerApp.tornado_settings={tornado_settings}",
        # window.jupyterapp: run cells and talk to the kernel through Jupyter's own commands.
        "--expose-app-in-browser",
        # A safety net if the test process is killed hard and never tears down:
        # idle kernels are culled, then the idle server exits by itself.
        "--MappingKernelManager.cull_idle_timeout=900",
        "--MappingKernelManager.cull_interval=60",
        "--MappingKernelManager.cull_connected=True",
        "--ServerApp.shutdown_no_activity_timeout=900",
    ]


def _descendants(pid: int) -> list[Any]:
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:  # psutil missing or the process already gone
        return []


def _stop(process: subprocess.Popen, server: JupyterServer | None) -> None:
    children = _descendants(process.pid)  # kernels run in their own sessions: remember them now
    if server is not None and process.poll() is None:
        with contextlib.suppress(Exception):
            server.api("shutdown", method="POST", timeout=5)  # also shuts the kernels down
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    for child in children:
        with contextlib.suppress(Exception):
            if child.is_running():
                child.kill()


@contextlib.contextmanager
def jupyter_server(
    flavour: str, home: Path, *, startup_timeout: float = 60
) -> Iterator[JupyterServer]:
    """Start ``jupyter lab`` or ``jupyter notebook`` on a free loopback port; always stop it."""
    home.mkdir(parents=True, exist_ok=True)
    root_dir = home / "notebooks"
    root_dir.mkdir(exist_ok=True)
    env = _isolated_env(home)
    port = free_port()
    token = secrets.token_hex(16)
    log_path = home / f"jupyter-{flavour}.log"
    command = _server_command(flavour, port, token, root_dir)
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=root_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown can kill all of it
        )
    server = JupyterServer(flavour, f"http://127.0.0.1:{port}", token, root_dir, log_path, process)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"jupyter {flavour} exited with code {process.returncode} before it was ready.\n"
                    f"command: {command}\n--- server log ---\n{server.log()}"
                )
            try:
                server.api("status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"jupyter {flavour} did not answer /api/status within {startup_timeout:.0f} s.\n"
                    f"--- server log ---\n{server.log()}"
                )
            time.sleep(0.25)
        yield server
    finally:
        _stop(process, server)


# --------------------------------------------------------------------------------------------
# The browser


@contextlib.contextmanager
def chromium_page(
    user_data_dir: Path, *, viewport: tuple[int, int] = (1400, 1100)
) -> Iterator[Any]:
    """A Playwright page in Debian's headless Chromium, with a fresh profile; always closed."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("chromium not found: apt-get install -y chromium")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": viewport[0], "height": viewport[1]},
            accept_downloads=False,
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.console_lines = []  # kept for failure reports
            page.on("console", lambda msg: page.console_lines.append(f"[{msg.type}] {msg.text}"))
            page.on("pageerror", lambda err: page.console_lines.append(f"[pageerror] {err}"))
            yield page
        finally:
            context.close()


@contextlib.contextmanager
def report_on_failure(
    page: Any, server: JupyterServer, name: str, extra: Callable[[], str] | None = None
) -> Iterator[None]:
    """On any failure: a full-page screenshot, the browser console and the server log, printed.

    ``extra`` may add what only the test knows how to fetch (e.g. the widget's own error log).
    """
    try:
        yield
    except BaseException:
        shot = artifacts_dir() / f"FAILED-{name}.png"
        with contextlib.suppress(Exception):
            page.screenshot(path=str(shot), full_page=True, timeout=10_000)
            print(f"\nscreenshot of the failure: {shot}")
        if extra is not None:
            try:
                print(extra())
            except Exception as error:  # the page or kernel may be what broke
                print(f"(could not collect extra details: {error!r})")
        console = getattr(page, "console_lines", [])
        print("--- browser console (last 60) ---")
        print("\n".join(console[-60:]) or "(empty)")
        print(f"--- jupyter {server.flavour} log ({server.log_path}) ---")
        print(server.log())
        raise


# --------------------------------------------------------------------------------------------
# Notebook driving, through window.jupyterapp (same commands in Lab and Notebook 7)

_CURRENT_NOTEBOOK_JS = """
() => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  return (w && w.sessionContext && w.content && w.content.model) ? w : null;
}
"""

_KERNEL_IDLE_JS = """
() => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  if (!w || !w.sessionContext || !w.context || !w.context.isReady) return false;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}
"""

# page.evaluate has no timeout of its own: every wait in the page races a timer.
_RUN_ALL_JS = """
async (timeoutMs) => {
  const app = window.jupyterapp;
  const w = app.shell.currentWidget;
  const timer = new Promise((resolve) => setTimeout(() => resolve('timeout'), timeoutMs));
  const ok = await Promise.race([app.commands.execute('notebook:run-all-cells'), timer]);
  if (ok === 'timeout') return {ok: false, errors: [`cells still running after ${timeoutMs} ms`]};
  const errors = [];
  const cells = w.content.model.cells;
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    const outputs = cell.toJSON().outputs || [];
    for (const out of outputs) {
      if (out.output_type === 'error') {
        errors.push(`cell ${i}: ${out.ename}: ${out.evalue}\\n` + (out.traceback || []).join('\\n'));
      }
    }
  }
  return {ok: ok !== false, errors};
}
"""

_EXECUTE_JS = """
async ([code, timeoutMs]) => {
  const w = window.jupyterapp.shell.currentWidget;
  const kernel = w.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, silent: false, store_history: false});
  let stdout = '', stderr = '', error = null;
  future.onIOPub = (msg) => {
    const t = msg.header.msg_type;
    if (t === 'stream' && msg.content.name === 'stdout') stdout += msg.content.text;
    else if (t === 'stream') stderr += msg.content.text;
    else if (t === 'error') error = msg.content.ename + ': ' + msg.content.evalue + '\\n' +
        msg.content.traceback.join('\\n');
  };
  const timer = new Promise((resolve) => setTimeout(() => resolve('timeout'), timeoutMs));
  if (await Promise.race([future.done, timer]) === 'timeout') {
    error = `no reply from the kernel within ${timeoutMs} ms (busy or dead?)`;
  }
  return {stdout, stderr, error};
}
"""


def open_notebook(page: Any, server: JupyterServer, name: str, *, timeout: float = 60) -> None:
    """Open ``name`` (relative to the server root) and wait until its kernel is connected and idle."""
    page.goto(server.notebook_url(name), wait_until="domcontentloaded", timeout=timeout * 1000)
    page.wait_for_function(_CURRENT_NOTEBOOK_JS, timeout=timeout * 1000)
    page.wait_for_function(_KERNEL_IDLE_JS, timeout=timeout * 1000, polling=250)


def run_all_cells(page: Any, *, timeout: float = 120) -> None:
    """Run every cell through Jupyter's own command; fail with the tracebacks if any cell raised."""
    result = page.evaluate(_RUN_ALL_JS, int(timeout * 1000))
    if not result["ok"] or result["errors"]:
        raise AssertionError("a notebook cell failed:\n" + "\n\n".join(result["errors"]))


def kernel_execute(page: Any, code: str, *, timeout: float = 30) -> str:
    """Run ``code`` in the notebook's own kernel (beside the widgets) and return its stdout."""
    result = page.evaluate(_EXECUTE_JS, [code, int(timeout * 1000)])
    if result["error"]:
        raise AssertionError(f"kernel code failed:\n{code}\n---\n{_strip_ansi(result['error'])}")
    return result["stdout"]


def kernel_json(page: Any, expression: str) -> Any:
    """Evaluate a Python expression in the kernel and bring its value back through JSON."""
    marker = "@@json@@"
    out = kernel_execute(page, f"import json as _j; print({marker!r} + _j.dumps({expression}))")
    for line in out.splitlines():
        if line.startswith(marker):
            return json.loads(line[len(marker):])
    raise AssertionError(f"no value came back for {expression!r}; stdout was:\n{out}")


def upload_file(page: Any, upload_selector: str, path: Path, *, timeout: float = 15) -> None:
    """ipywidgets 8's FileUpload keeps no <input type=file> in the page: answer its file chooser."""
    with page.expect_file_chooser(timeout=timeout * 1000) as chooser:
        page.click(upload_selector)
    chooser.value.set_files(str(path))


# Reads a <video> element's state: the test asserts on what the browser itself decoded.
VIDEO_STATE_JS = """
(el) => ({
  readyState: el.readyState,
  duration: Number.isFinite(el.duration) ? el.duration : -1,
  videoWidth: el.videoWidth,
  videoHeight: el.videoHeight,
  currentTime: el.currentTime,
  errorCode: el.error ? el.error.code : null,
  errorMessage: el.error ? el.error.message : null,
  src: el.currentSrc || el.src || '',
})
"""


def wait_for_video(page: Any, selector: str, *, timeout: float = 30) -> dict:
    """Wait until the <video> at ``selector`` has decoded metadata, or fail with its media error."""
    handle = page.wait_for_selector(selector, state="attached", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        state = handle.evaluate(VIDEO_STATE_JS)
        if state["errorCode"] is not None:
            raise AssertionError(f"the browser cannot play {selector}: {state}")
        if state["readyState"] >= 1 and state["duration"] > 0 and state["videoWidth"] > 0:
            return state
        time.sleep(0.2)
    raise AssertionError(f"{selector} did not load within {timeout:.0f} s: {state}")


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
