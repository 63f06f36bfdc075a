"""Local network stand-ins for the tests: Kaggle's dataset API, a file server and an HTTP CONNECT proxy, on
127.0.0.1."""

from __future__ import annotations

import json
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KAGGLE_TEST_PORT = 7777  # kagglesdk's KAGGLE_API_ENVIRONMENT=TEST endpoint is http://localhost:7777


PROXY_VARS = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)


class _ServedInBackground:
    """A `self.server` (ThreadingHTTPServer) served on a daemon thread for the length of a `with` block."""

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class KaggleStub(_ServedInBackground):
    """The two calls kagglehub.dataset_download makes, as kagglesdk (TEST env) sends them.

    POST /api/v1/datasets.DatasetApiService/GetDataset answers the current version; .../DownloadDataset
    answers the archive. `mode` makes both fail the way Kaggle can: '401', '404', or 'truncated'
    (the first half of the archive). `calls` lists (request name, JSON body) in order.
    """

    def __init__(self, archive: bytes, version: int = 2):
        self.archive, self.version, self.mode, self.calls = archive, version, "ok", []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, content_type: str):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):  # the reachability probe
                self._send(200, b"", "text/plain")

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                name = self.path.rsplit("/", 1)[-1]
                stub.calls.append((name, body))
                if stub.mode in ("401", "404"):
                    status = int(stub.mode)
                    message = "Unauthenticated" if status == 401 else "Dataset not found"
                    return self._send(
                        status, json.dumps({"code": status, "message": message}).encode(), "application/json"
                    )
                if name == "GetDataset":
                    return self._send(
                        200, json.dumps({"currentVersionNumber": stub.version}).encode(), "application/json"
                    )
                if name == "DownloadDataset":
                    data = stub.archive[: len(stub.archive) // 2] if stub.mode == "truncated" else stub.archive
                    return self._send(200, data, "application/zip")
                self._send(404, b"{}", "application/json")

        try:
            self.server = ThreadingHTTPServer(("127.0.0.1", KAGGLE_TEST_PORT), Handler)
        except OSError as exc:
            raise RuntimeError(f"port {KAGGLE_TEST_PORT} (kagglesdk's TEST endpoint) is busy: {exc}") from None

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class FileServer(_ServedInBackground):
    """Serves `files` (URL path -> bytes) over HTTP on a free port; any other path is a 404. `requests` lists
    (method, path) of every request, in order; `url(path)` is a file's address."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests = files, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                stub.requests.append((self.command, self.path))
                body = stub.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                if self.command == "GET" and body:
                    self.wfile.write(body)

            do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = self.server.server_address

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.address[1]}{path}"


class ConnectProxy:
    """A tiny HTTP proxy: CONNECT tunnels and absolute-URI requests, each to `routes[host:port]` if given,
    else to the host itself. `seen` lists every request line it got ('CONNECT api.kaggle.com:443')."""

    def __init__(self, routes: dict[str, tuple[str, int]] | None = None):
        self.routes, self.seen = routes or {}, []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()

    def _upstream(self, target: str) -> socket.socket:
        host, _, port = target.rpartition(":")
        return socket.create_connection(self.routes.get(target, (host, int(port))), timeout=5)

    def _handle(self, client: socket.socket):
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode()
            self.seen.append(line)
            method, target, _ = line.split(" ", 2)
            try:
                if method == "CONNECT":
                    upstream = self._upstream(target)
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    rest = b""
                else:  # GET http://host:port/path HTTP/1.1
                    hostport = target.split("/")[2]
                    upstream = self._upstream(hostport if ":" in hostport else f"{hostport}:80")
                    rest = head.replace(target.encode(), ("/" + target.split("/", 3)[3]).encode(), 1)
            except OSError:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            with upstream:
                if rest:
                    upstream.sendall(rest)
                self._pipe(client, upstream)

    def _pipe(self, a: socket.socket, b: socket.socket):
        while not self._stop.is_set():
            ready, _, _ = select.select([a, b], [], [], 0.2)
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)

    def _serve(self):
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def __enter__(self):
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.sock.close()
