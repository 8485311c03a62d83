"""A fake Hugging Face hub on 127.0.0.1 for the download tests: the few endpoints the hub library calls.

It serves what ``HfApi.model_info(files_metadata=True)`` and ``hf_hub_download`` ask for, so the real
hub library (its cache layout, ``.incomplete`` files, HTTP Range resumption, metadata checks) runs
against it unchanged:

* ``GET /api/models/<repo>[/revision/<rev>]``: the file list with sizes and the commit;
* ``HEAD``/``GET /<repo>/resolve/<rev>/<path>``: the headers the hub sends (``X-Repo-Commit``,
  ``ETag``, ``Content-Length``) and the bytes, honouring ``Range: bytes=N-`` with a 206.

Faults for the tests: ``cut[path] = n`` sends the first n bytes of a file once and drops the
connection; while a path is in ``broken``, every later GET of it is refused (404) after the cut.
Every request is logged in ``requests`` as (method, path, range header).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional, Tuple

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self) -> None:
        self.repos: Dict[str, Dict[str, bytes]] = {}
        self.requests: List[Tuple[str, str, Optional[str]]] = []
        self.cut: Dict[str, int] = {}
        self.broken: set = set()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep pytest's output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                hub._handle(self, body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                hub._handle(self, body=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def add_folder(self, repo_id: str, folder: Path, extra: Optional[Dict[str, bytes]] = None) -> Dict[str, bytes]:
        """Serve every file under ``folder`` (and ``extra`` name -> bytes) as the repository ``repo_id``."""
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
                 if p.is_file() and not p.name.startswith(".")}
        files.update(extra or {})
        self.repos[repo_id] = files
        return files

    def gets(self, name: str) -> List[Optional[str]]:
        """The Range header of every GET of a file whose path ends with ``name``."""
        return [rng for method, path, rng in self.requests if method == "GET" and path.endswith("/" + name)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- serving -----------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = handler.path.split("?", 1)[0]
        self.requests.append((handler.command, path, handler.headers.get("Range")))
        if path.startswith("/api/models/"):
            return self._model_info(handler, path[len("/api/models/"):], body)
        if "/resolve/" in path:
            repo_id, rest = path.lstrip("/").split("/resolve/", 1)
            name = rest.split("/", 1)[1] if "/" in rest else ""
            return self._file(handler, repo_id, name, body)
        self._send(handler, 404, b"not found", body)

    def _model_info(self, handler: BaseHTTPRequestHandler, rest: str, body: bool) -> None:
        repo_id = rest.split("/revision/", 1)[0]
        files = self.repos.get(repo_id)
        if files is None:
            return self._send(handler, 404, b'{"error": "Repository not found"}', body,
                              {"X-Error-Code": "RepositoryNotFound", "Content-Type": "application/json"})
        # The fields the real hub always sends (huggingface_hub 0.23 requires downloads, likes and tags).
        data = {"id": repo_id, "modelId": repo_id, "sha": COMMIT, "private": False, "disabled": False,
                "gated": False, "downloads": 0, "likes": 0, "tags": [], "library_name": "transformers",
                "siblings": [{"rfilename": name, "size": len(content)} for name, content in files.items()]}
        self._send(handler, 200, json.dumps(data).encode(), body, {"Content-Type": "application/json"})

    def _file(self, handler: BaseHTTPRequestHandler, repo_id: str, name: str, body: bool) -> None:
        content = self.repos.get(repo_id, {}).get(name)
        if content is None:
            return self._send(handler, 404, b"entry not found", body, {"X-Error-Code": "EntryNotFound"})
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(content).hexdigest()}"',
                   "Accept-Ranges": "bytes"}
        if not body:
            return self._send(handler, 200, content, False, headers)
        if name in self.broken and name not in self.cut:
            return self._send(handler, 404, b"gone for now", True, {"X-Error-Code": "EntryNotFound"})
        start = 0
        rng = handler.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[len("bytes="):].split("-", 1)[0])
        if name in self.cut and start == 0:
            n = self.cut.pop(name)
            handler.send_response(200)
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(content)))
            handler.end_headers()
            handler.wfile.write(content[:n])
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)  # the network drops mid-file
            handler.close_connection = True
            return
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
            return self._send(handler, 206, content[start:], True, headers)
        self._send(handler, 200, content, True, headers)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, content: bytes, body: bool,
              headers: Optional[Dict[str, str]] = None) -> None:
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        if body:
            handler.wfile.write(content)


class SilentServer:
    """Accepts TCP connections and never answers: a hub behind a broken proxy. Counts connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: List[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections.append(conn)  # held open, never read, never answered

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self.connections:
            conn.close()
        self.sock.close()


def closed_port_url() -> str:
    """An address where nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
