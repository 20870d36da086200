"""A fake Hugging Face Hub on 127.0.0.1 speaking the protocol huggingface_hub and our downloader use.

Routes: HEAD/GET /{repo}/resolve/{rev}/{path} (X-Repo-Commit, ETag/X-Linked-Etag = sha256,
Content-Length/X-Linked-Size, Range -> 206 + Content-Range), GET /api/models/{repo}[/revision/{rev}],
GET /api/models/{repo}/tree/{rev}, GET /api/models?search=... . Dataset repositories (add_dataset):
GET /api/datasets/{repo}/tree/{rev}/{path} (one folder's entries), /datasets/{repo}/resolve/...,
and what huggingface_hub's create_commit sends: POST /api/validate-yaml, /api/datasets/{repo}/preupload/{rev}
(every file "regular") and /api/datasets/{repo}/commit/{rev} (NDJSON; with create_pr=1 a pull request
that is kept apart, as the Hub does, until merge_pull_request()). Failure modes are switches on the
server object so tests can script a 500, a 401, corrupted bytes, a stall, or slow streaming.

With use_cdn(), /resolve/ answers as the Hub does for Xet-stored files: 302 to a signed URL on a
second host (127.0.0.2) that expires, refuses an Authorization header, and answers a range-less
GET of a large file with 400.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@functools.lru_cache(maxsize=64)
def sha256_of(data: bytes) -> str:
    """Once per file: the real Hub does not hash a file per request, and a benchmark must not pay it."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class Repo:
    id: str
    files: dict[str, bytes] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)
    gated: bool | str = False
    downloads: int = 0
    likes: int = 0
    last_modified: str = "2026-01-01T00:00:00.000Z"
    gguf: dict[str, Any] | None = None  # what the Hub reads from the GGUF header: total, architecture…


@dataclass
class PullRequest:
    number: int
    title: str
    description: str
    files: dict[str, bytes]
    token: str | None  # the Authorization header's bearer token


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.pull_requests: dict[str, list[PullRequest]] = {}  # by dataset repository
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.responses: list[tuple[str, str, int]] = []  # method, path, status code
        self.fail_next: list[int] = []  # status codes to answer before serving normally
        self.corrupt = False  # serve flipped bytes
        self.stall_after: int | None = None  # stop sending after this many body bytes (then hang)
        self.bytes_per_second: float | None = None  # throttle streaming
        self.require_token: str | None = None  # gated repos answer 401 without it
        self.cdn: FakeCdn | None = None
        self.bytes_served = 0  # file bytes sent (both hosts): what a client's download cost
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    # -- setup ---------------------------------------------------------------------------------
    def add(self, repo: Repo) -> Repo:
        self.repos[repo.id] = repo
        return repo

    def add_dataset(self, repo_id: str, files: dict[str, bytes] | None = None) -> Repo:
        """A dataset repository (kept beside models under "datasets/", as its URLs are)."""
        self.pull_requests.setdefault(repo_id, [])
        return self.add(Repo(f"datasets/{repo_id}", dict(files or {})))

    def merge_pull_request(self, repo_id: str, number: int) -> None:
        pr = next(p for p in self.pull_requests[repo_id] if p.number == number)
        self.repos[f"datasets/{repo_id}"].files.update(pr.files)

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                hub._handle(self, head=True)

            def do_GET(self) -> None:  # noqa: N802
                hub._handle(self, head=False)

            def do_POST(self) -> None:  # noqa: N802
                hub._post(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def use_cdn(self, ttl: float = 3600.0, rangeless_limit: int = 1 << 20) -> FakeCdn:
        """Serve file bytes from a second host through signed URLs valid for `ttl` seconds."""
        self.cdn = FakeCdn(self, ttl, rangeless_limit).start()
        return self.cdn

    def stop(self) -> None:
        self._stop.set()
        if self.cdn:
            self.cdn.stop()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # -- protocol ------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        url = urlparse(h.path)
        self.requests.append((h.command, url.path, dict(h.headers)))
        try:
            if self.fail_next:
                code = self.fail_next.pop(0)
                return self._send(h, code, b'{"error": "scripted failure"}', head)
            m = re.match(r"^/api/models/(.+?)/tree/([^/]+)/?(.*)$", url.path)
            if m:
                return self._tree(h, unquote(m.group(1)), head)
            m = re.match(r"^/api/datasets/(.+?)/tree/([^/]+)/?(.*)$", url.path)
            if m:
                return self._folder(h, unquote(m.group(1)), unquote(m.group(3)).strip("/"), head)
            m = re.match(r"^/api/models/(.+?)(?:/revision/([^/]+))?$", url.path)
            if m and url.path != "/api/models":
                return self._model_info(h, unquote(m.group(1)), parse_qs(url.query), head)
            if url.path in ("/api/models", "/api/models/"):
                return self._search(h, parse_qs(url.query), head)
            m = re.match(r"^/(.+?)/resolve/([^/]+)/(.+)$", url.path)
            if m:
                return self._resolve(h, unquote(m.group(1)), unquote(m.group(3)), head)
            self._send(h, 404, b'{"error": "not found"}', head)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _post(self, h: BaseHTTPRequestHandler) -> None:
        url = urlparse(h.path)
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        self.requests.append((h.command, url.path, dict(h.headers)))
        try:
            if self.fail_next:
                return self._send(h, self.fail_next.pop(0), b'{"error": "scripted failure"}', False)
            if url.path == "/api/validate-yaml":
                return self._send(h, 200, b'{"errors": [], "warnings": []}', False)
            m = re.match(r"^/api/datasets/(.+?)/(preupload|commit)/([^/]+)$", url.path)
            if not m or f"datasets/{unquote(m.group(1))}" not in self.repos:
                return self._repo_not_found(h, False)
            repo_id = unquote(m.group(1))
            if not h.headers.get("Authorization"):
                return self._send(h, 401, b'{"error": "Invalid credentials"}', False, {"X-Error-Code": "Unauthorized"})
            if m.group(2) == "preupload":
                files = json.loads(body)["files"]
                modes = [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in files
                ]
                return self._send(h, 200, json.dumps({"files": modes}).encode(), False)
            return self._commit(h, repo_id, body, parse_qs(url.query).get("create_pr") == ["1"])
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _commit(self, h: BaseHTTPRequestHandler, repo_id: str, body: bytes, create_pr: bool) -> None:
        import base64

        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(item["value"] for item in lines if item["key"] == "header")
        files = {
            item["value"]["path"]: base64.b64decode(item["value"]["content"]) for item in lines if item["key"] == "file"
        }
        base = f"{self.endpoint}/datasets/{repo_id}"
        if not create_pr:
            self.repos[f"datasets/{repo_id}"].files.update(files)
            answer = {"commitUrl": f"{base}/commit/{COMMIT}", "commitOid": COMMIT}
            return self._send(h, 200, json.dumps(answer).encode(), False)
        number = len(self.pull_requests[repo_id]) + 1
        bearer = (h.headers.get("Authorization") or "").removeprefix("Bearer ") or None
        self.pull_requests[repo_id].append(
            PullRequest(number, header["summary"], header.get("description", ""), files, bearer)
        )
        answer = {
            "commitUrl": f"{base}/commit/{COMMIT}",
            "commitOid": COMMIT,
            "pullRequestUrl": f"{base}/discussions/{number}",
        }
        self._send(h, 200, json.dumps(answer).encode(), False)

    def _folder(self, h: BaseHTTPRequestHandler, repo_id: str, path: str, head: bool) -> None:
        """One folder of a dataset: its files and subfolders (the Hub's tree, not recursive)."""
        repo = self.repos.get(f"datasets/{repo_id}")
        if repo is None:
            return self._repo_not_found(h, head)
        prefix = f"{path}/" if path else ""
        entries: dict[str, dict[str, Any]] = {}
        for name, data in repo.files.items():
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            if "/" in rest:
                folder = prefix + rest.split("/")[0]
                entries[folder] = {
                    "type": "directory",
                    "oid": hashlib.sha1(folder.encode()).hexdigest(),
                    "size": 0,
                    "path": folder,
                }
            else:
                entries[name] = {"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data), "path": name}
        if not entries and path:
            return self._send(h, 404, b'{"error": "Entry not found"}', head, {"X-Error-Code": "EntryNotFound"})
        self._send(h, 200, json.dumps(list(entries.values())).encode(), head)

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        code: int,
        body: bytes,
        head: bool,
        headers: dict[str, str] | None = None,
        ctype: str = "application/json",
    ) -> None:
        self.responses.append((h.command, urlparse(h.path).path, code))
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _repo_not_found(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        """As the real Hub: logged out, a missing repository is a 401 (it might be private)."""
        code = 404 if h.headers.get("Authorization") else 401
        self._send(
            h,
            code,
            b'{"error": "Repository not found"}',
            head,
            {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
        )

    def _gated(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        """As the real Hub: 401 without a token, 403 with a token that was not granted access."""
        code = 403 if h.headers.get("Authorization") else 401
        self._send(
            h,
            code,
            b'{"error": "Access to this model is restricted."}',
            head,
            {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access to this model is restricted."},
        )

    def _authorized(self, h: BaseHTTPRequestHandler, repo: Repo) -> bool:
        if not repo.gated or self.require_token is None:
            return True
        return h.headers.get("Authorization") == f"Bearer {self.require_token}"

    def _siblings(self, repo: Repo, with_meta: bool) -> list[dict[str, Any]]:
        out = []
        for name, data in repo.files.items():
            item: dict[str, Any] = {"rfilename": name}
            if with_meta:
                item["size"] = len(data)
                item["lfs"] = {"sha256": sha256_of(data), "size": len(data), "pointerSize": 134}
            out.append(item)
        return out

    def _info_json(self, repo: Repo, with_meta: bool) -> dict[str, Any]:
        return {
            "_id": "x" * 24,
            "id": repo.id,
            "modelId": repo.id,
            "author": repo.id.split("/")[0],
            "sha": COMMIT,
            "private": False,
            "gated": repo.gated,
            "disabled": False,
            "downloads": repo.downloads,
            "likes": repo.likes,
            "lastModified": repo.last_modified,
            "createdAt": "2025-01-01T00:00:00.000Z",
            "tags": ["gguf", *repo.card.get("tags", [])],
            "library_name": "gguf",
            "cardData": repo.card,
            "siblings": self._siblings(repo, with_meta),
            **({"gguf": repo.gguf} if repo.gguf else {}),
        }

    def _model_info(self, h: BaseHTTPRequestHandler, repo_id: str, query: dict, head: bool) -> None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._repo_not_found(h, head)
        with_meta = (query.get("blobs") or [""])[0].lower() == "true"  # files_metadata=True asks for blobs
        self._send(h, 200, json.dumps(self._info_json(repo, with_meta=with_meta)).encode(), head)

    def _tree(self, h: BaseHTTPRequestHandler, repo_id: str, head: bool) -> None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._repo_not_found(h, head)
        items = [
            {
                "type": "file",
                "oid": hashlib.sha1(d).hexdigest(),
                "size": len(d),
                "path": n,
                "lfs": {"oid": sha256_of(d), "size": len(d), "pointerSize": 134},
            }
            for n, d in repo.files.items()
        ]
        self._send(h, 200, json.dumps(items).encode(), head)

    def _search(self, h: BaseHTTPRequestHandler, query: dict, head: bool) -> None:
        text = (query.get("search") or [""])[0].lower()
        results = [r for r in self.repos.values() if text in r.id.lower()]
        sort = (query.get("sort") or ["downloads"])[0]
        key = {
            "downloads": lambda r: r.downloads,
            "likes": lambda r: r.likes,
            "lastModified": lambda r: r.last_modified,
        }.get(sort, lambda r: r.downloads)
        results.sort(key=key, reverse=True)
        limit = int((query.get("limit") or [50])[0])
        body = [self._info_json(r, with_meta=False) for r in results[:limit]]
        self._send(h, 200, json.dumps(body).encode(), head)

    def _resolve(self, h: BaseHTTPRequestHandler, repo_id: str, filename: str, head: bool) -> None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._repo_not_found(h, head)
        if not self._authorized(h, repo):
            return self._gated(h, head)
        if filename not in repo.files:
            return self._send(h, 404, b'{"error": "Entry not found"}', head, {"X-Error-Code": "EntryNotFound"})
        data = repo.files[filename]
        sha = sha256_of(data)
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{sha}"',
            "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(len(data)),
            "Accept-Ranges": "bytes",
        }
        if self.cdn is not None:  # Xet: the bytes are elsewhere, behind a signed URL
            headers["X-Xet-Hash"] = hashlib.sha1(data).hexdigest()  # not the sha256: never verify against it
            headers["Location"] = self.cdn.signed_url(repo_id, filename)
            return self._send(h, 302, b"", head, headers)
        self.serve_bytes(h, data, head, headers)

    def serve_bytes(self, h: BaseHTTPRequestHandler, data: bytes, head: bool, headers: dict[str, str]) -> None:
        """The body of a file, honouring Range (206) and the failure switches."""
        start, end = 0, len(data) - 1
        rng = h.headers.get("Range")
        code = 200
        if rng:
            m = re.match(r"bytes=(\d+)-(\d*)", rng)
            if m:
                start = int(m.group(1))
                end = min(int(m.group(2)), len(data) - 1) if m.group(2) else len(data) - 1
                if start >= len(data):
                    return self._send(h, 416, b"", head, {"Content-Range": f"bytes */{len(data)}"})
                code = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        body = data[start : end + 1]
        if not head:
            self.bytes_served += len(body)
        self.responses.append((h.command, urlparse(h.path).path, code))
        if self.corrupt:
            body = bytes(b ^ 0xFF for b in body[:16]) + body[16:]
        h.send_response(code)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if head:
            return
        sent = 0
        chunk = 64 * 1024
        while sent < len(body):
            if self.stall_after is not None and sent >= self.stall_after:
                self._stop.wait(60)  # hang: the client must time out
                return
            piece = body[sent : sent + chunk]
            h.wfile.write(piece)
            sent += len(piece)
            if self.bytes_per_second:
                time.sleep(len(piece) / self.bytes_per_second)

    def count(self, prefix: str = "") -> int:
        return sum(1 for _, path, _ in self.requests if path.startswith(prefix))


class FakeCdn:
    """The storage host a Xet-backed /resolve/ redirects to (see use_cdn)."""

    SECRET = b"fake-cdn-secret"

    def __init__(self, hub: FakeHub, ttl: float, rangeless_limit: int) -> None:
        self.hub, self.ttl, self.rangeless_limit = hub, ttl, rangeless_limit
        self.requests: list[tuple[str, dict[str, str], int]] = []  # path, headers, status
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> FakeCdn:
        cdn = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                cdn._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def _sign(self, path: str, expires: int) -> str:
        return hmac.new(self.SECRET, f"{path}:{expires}".encode(), hashlib.sha256).hexdigest()

    def signed_url(self, repo: str, filename: str) -> str:
        assert self._server is not None
        path = f"/xet/{repo}/{filename}"
        expires = int(time.time() + self.ttl)
        return (
            f"http://127.0.0.2:{self._server.server_address[1]}{path}?expires={expires}&sig={self._sign(path, expires)}"
        )

    def _refuse(self, h: BaseHTTPRequestHandler, code: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlparse(h.path)
        query = parse_qs(url.query)
        expires = int((query.get("expires") or ["0"])[0])
        status = 200
        try:
            m = re.match(r"^/xet/(.+?/[^/]+)/(.+)$", url.path)
            repo = self.hub.repos.get(unquote(m.group(1))) if m else None
            data = repo.files.get(unquote(m.group(2))) if repo and m else None
            if h.headers.get("Authorization"):
                status = 400  # a presigned URL takes no other credentials (and must never see the token)
                return self._refuse(h, status, "Only one auth mechanism allowed")
            if not hmac.compare_digest(self._sign(url.path, expires), (query.get("sig") or [""])[0]):
                status = 403
                return self._refuse(h, status, "Signature does not match")
            if time.time() > expires:
                status = 403
                return self._refuse(h, status, "Request has expired")
            if data is None:
                status = 404
                return self._refuse(h, status, "Not found")
            if not h.headers.get("Range") and len(data) > self.rangeless_limit:
                status = 400
                return self._refuse(h, status, "Range required for large objects")
            status = 206 if h.headers.get("Range") else 200
            self.requests.append((url.path, dict(h.headers), status))  # before the body: the client may finish first
            self.hub.serve_bytes(h, data, False, {"Accept-Ranges": "bytes"})
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            if status not in (200, 206):
                self.requests.append((url.path, dict(h.headers), status))
