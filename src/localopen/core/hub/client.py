"""The Hugging Face Hub, through huggingface_hub, with the same environment as every Hub tool.

HF_ENDPOINT, HF_TOKEN, HF_HOME and HF_HUB_OFFLINE are read at call time (huggingface_hub reads
some at import) and passed explicitly. Offline means no request at all. Every call has a short
timeout so nothing blocks start-up. The token is never printed or logged.

huggingface_hub's typed errors are caught by type, gated before not-found (GatedRepoError is a
RepositoryNotFoundError). Logged out, the real Hub answers 401 for a repository that does not
exist, so a 401 without "GatedRepo" means "not found, or private", never "gated".
"""

from __future__ import annotations

import logging
import os
import socket
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from localopen.core.errors import LocalopenError
from localopen.core.gguf.files import quant_of

log = logging.getLogger("localopen.hub")
_T = TypeVar("_T")

DEFAULT_ENDPOINT = "https://huggingface.co"
# Before a request, the Hub's host must take a connection within this: without a network
# huggingface_hub retries five times with back-off (some 24 s) before it says so.
REACH_TIMEOUT_S = 3.0
REACHED_FOR_S = 60.0  # a host that answered is not asked again for this long
_reached: dict[tuple[str, int], float] = {}  # host and port -> when it last took a connection
PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy")


def unreachable(address: str, timeout: float = REACH_TIMEOUT_S) -> str | None:
    """Why the host of `address` cannot be reached now, in words (None: it took a connection, or
    requests go through a proxy, which is then the one to say)."""
    if any(os.environ.get(v) or os.environ.get(v.upper()) for v in PROXY_VARIABLES):
        return None
    parts = urllib.parse.urlsplit(address)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    if time.monotonic() - _reached.get((host, port), -REACHED_FOR_S) < REACHED_FOR_S:
        return None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            _reached[(host, port)] = time.monotonic()
            return None
    except socket.gaierror:
        return f"{host} could not be looked up: no network, or no name server"
    except TimeoutError:
        return f"{host} did not answer within {timeout:.0f} s"
    except OSError as exc:
        return f"{host}: {exc.strerror or type(exc).__name__}"


class HubError(LocalopenError):
    """A Hub request failed; the message says what to do."""


class OfflineError(HubError):
    pass


class GatedError(HubError):
    pass


class NotFoundError(HubError):
    pass


@dataclass(frozen=True)
class RemoteFile:
    repo: str
    filename: str
    size: int | None
    sha256: str | None
    revision: str = "main"

    @property
    def quant(self) -> str | None:
        return quant_of(self.filename)


@dataclass(frozen=True)
class RepoFacts:
    """What the Hub says of one repository now: its files, its card's licence tag, its gating."""

    repo: str
    files: list[RemoteFile]
    license: str | None
    gated: bool | str  # False, or how access is granted ("auto", "manual")
    revision: str = "main"


def is_offline(offline_setting: bool = False) -> bool:
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return env in ("1", "true", "yes", "on") or offline_setting


def endpoint() -> str:
    """HF_ENDPOINT (else the Hub), checked: a malformed one is said in words before any request."""
    value = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
    try:
        parts = urllib.parse.urlsplit(value)
        _ = parts.port  # an unclosed [ or a port that is not a number raises here
    except ValueError as exc:
        raise HubError(f"HF_ENDPOINT is not a usable address ({value!r}: {exc}). Fix or unset it.") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HubError(f"HF_ENDPOINT must be an http(s) address such as https://huggingface.co, not {value!r}.")
    return value


def save_token(value: str) -> Path:
    """Store a token where huggingface_hub keeps its login (HF_TOKEN_PATH, else HF_HOME/token),
    readable by this user only from its first byte: written to a private file made with mode
    0600, then moved into place (an existing, wider file is replaced, not reused)."""
    from huggingface_hub import constants

    path = Path(os.environ.get("HF_TOKEN_PATH") or constants.HF_TOKEN_PATH)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value.strip())
        os.replace(fresh, path)
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise
    return path


def token() -> str | None:
    """HF_TOKEN, else huggingface_hub's stored login (HF_HOME); never printed."""
    value = os.environ.get("HF_TOKEN")
    if value:
        return value
    from huggingface_hub import get_token
    from huggingface_hub.errors import LocalTokenNotFoundError

    try:
        return get_token()
    except (LocalTokenNotFoundError, OSError):  # no stored login, or an unreadable one: logged out
        return None


def _gated(repo: str) -> GatedError:
    return GatedError(
        f"{repo} is gated: accept its licence on https://huggingface.co/{repo} while logged in, then set "
        "a token (HF_TOKEN, or `hf auth login`). localopen never shows or logs the token."
    )


def _repo_not_found(repo: str) -> NotFoundError:
    return NotFoundError(
        f"{repo} was not found on the Hub, or it is private: check the name, or log in (HF_TOKEN, or `hf auth login`)."
    )


def explain_http(status: int, repo: str, filename: str | None = None, error_code: str | None = None) -> HubError:
    """A Hub HTTP failure in plain words, from its status and the Hub's X-Error-Code header."""
    what = f"{repo}/{filename}" if filename else repo
    if error_code == "GatedRepo":
        return _gated(repo)
    if error_code == "RepoNotFound" or (status == 401 and not error_code):
        return _repo_not_found(repo)
    if status == 404 or error_code in ("EntryNotFound", "RevisionNotFound"):
        return NotFoundError(f"{what} was not found on the Hub (check the repository and file name).")
    if status == 403:
        return GatedError(
            f"The Hub refused access to {what} with this token: check that it may read this "
            "repository. localopen never shows or logs the token."
        )
    if status == 429:
        return HubError("The Hub is rate-limiting requests; wait a minute and try again.")
    return HubError(f"The Hub answered HTTP {status} for {what}; try again later.")


class Hub:
    def __init__(self, offline: bool = False, timeout: float = 10.0) -> None:
        self.offline = offline
        self.timeout = timeout

    def _check_online(self) -> None:
        if is_offline(self.offline):
            raise OfflineError("localopen is offline (offline setting or HF_HUB_OFFLINE): no Hub request made.")

    def _api(self) -> Any:
        address = endpoint()  # checked before huggingface_hub reads HF_ENDPOINT at its import
        from huggingface_hub import HfApi

        return HfApi(endpoint=address, token=token() or False)

    def _call(self, what: str, call: Callable[[], _T]) -> _T:
        """Run one huggingface_hub call; its typed errors become HubErrors in plain words."""
        import httpx2
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            OfflineModeIsEnabled,
            RemoteEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        self._check_online()
        address = endpoint()
        why = unreachable(address)
        if why is not None:
            log.info("Hub unreachable for %s: %s", what, why)
            raise OfflineError(f"Offline: the Hub could not be reached ({why}). Check the connection, or work offline.")
        try:
            return call()
        except GatedRepoError as exc:  # before RepositoryNotFoundError: it is one
            raise _gated(what) from exc
        except RepositoryNotFoundError as exc:
            raise _repo_not_found(what) from exc
        except (RevisionNotFoundError, RemoteEntryNotFoundError) as exc:
            raise NotFoundError(f"{what} was not found on the Hub (check the repository and revision).") from exc
        except OfflineModeIsEnabled as exc:
            raise OfflineError("huggingface_hub is in offline mode (HF_HUB_OFFLINE): no Hub request made.") from exc
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            raise explain_http(
                status, what, None, exc.response.headers.get("X-Error-Code") if exc.response is not None else None
            ) from exc
        except (httpx2.TransportError, OSError) as exc:
            log.info("Hub unreachable for %s: %s", what, exc)
            raise OfflineError(
                f"The Hub could not be reached ({type(exc).__name__}). Check the connection, or work offline."
            ) from exc

    def files(self, repo: str, revision: str | None = None) -> list[RemoteFile]:
        """Every file of a repo with exact size and sha256 (LFS)."""
        return self.repo_facts(repo, revision).files

    def repo_facts(self, repo: str, revision: str | None = None) -> RepoFacts:
        """A repository's files (sizes, sha256 of LFS files), licence tag and gating, in one request."""
        info = self._call(
            repo, lambda: self._api().model_info(repo, revision=revision, files_metadata=True, timeout=self.timeout)
        )
        at = info.sha or revision or "main"
        files = []
        for s in info.siblings or []:
            lfs = getattr(s, "lfs", None)
            size = getattr(s, "size", None) or (lfs.size if lfs else None)
            files.append(RemoteFile(repo, s.rfilename, size, lfs.sha256 if lfs else None, at))
        card = getattr(info, "card_data", None)
        licence = card.get("license") if card is not None else None
        return RepoFacts(repo, files, licence if isinstance(licence, str) else None, info.gated or False, at)

    def open_pull_request(self, repo: str, files: dict[str, bytes], title: str, description: str) -> str:
        """Files added to a dataset repository as a pull request (a contributor needs no write
        access, and every contribution is reviewed before it is merged); its address."""
        if not token():
            raise HubError(
                "Publishing needs a Hugging Face token (HF_TOKEN, or `hf auth login`): the pull request is "
                "opened in your name. localopen never shows or logs the token."
            )
        from huggingface_hub import CommitOperationAdd

        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=data) for path, data in files.items()]
        info = self._call(
            repo,
            lambda: self._api().create_commit(
                repo,
                operations,
                commit_message=title,
                commit_description=description,
                repo_type="dataset",
                create_pr=True,
            ),
        )
        return str(info.pr_url or info.commit_url)

    def dataset_folder(self, repo: str, path: str) -> list[tuple[str, str, int]]:
        """The files in one folder of a dataset repository: path, blob id (a file changed is a new
        id) and size; a folder that does not exist raises NotFoundError."""
        from huggingface_hub.hf_api import RepoFile

        def call() -> list[tuple[str, str, int]]:
            tree = self._api().list_repo_tree(repo, path_in_repo=path, repo_type="dataset")
            return [(e.path, e.blob_id, e.size) for e in tree if isinstance(e, RepoFile)]

        return self._call(f"{repo}/{path}", call)

    def dataset_file(self, repo: str, path: str) -> bytes:
        """One file of a dataset repository, read whole (the caller keeps what it needs of it)."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="localopen-hub-") as scratch:
            local = self._call(
                f"{repo}/{path}",
                lambda: self._api().hf_hub_download(repo, path, repo_type="dataset", cache_dir=scratch),
            )
            return Path(local).read_bytes()

    def search(self, query: str, sort: str = "downloads", limit: int = 20) -> list[dict[str, Any]]:
        sort_key = {
            "downloads": "downloads",
            "likes": "likes",
            "recent": "lastModified",
            "lastModified": "lastModified",
        }.get(sort, "downloads")
        expand = ["cardData", "siblings", "downloads", "likes", "lastModified", "gated", "tags", "gguf"]

        def call() -> list[dict[str, Any]]:  # list_models is lazy: the requests happen while iterating
            found = self._api().list_models(
                filter="gguf", search=query or None, sort=sort_key, limit=limit, expand=expand
            )
            return [_info_dict(m) for m in found]

        return self._call(query or "the Hub search", call)


def _info_dict(info: Any) -> dict[str, Any]:
    card = getattr(info, "card_data", None)
    card_dict = {} if card is None else card.to_dict() if hasattr(card, "to_dict") else dict(card)
    last = getattr(info, "last_modified", None)
    return {
        "id": info.id,
        "cardData": card_dict,
        "tags": list(getattr(info, "tags", None) or []),
        "gated": getattr(info, "gated", False),
        "downloads": getattr(info, "downloads", None),
        "likes": getattr(info, "likes", None),
        "lastModified": last.isoformat() if last is not None and hasattr(last, "isoformat") else last,
        "files": [s.rfilename for s in (getattr(info, "siblings", None) or [])],
        "gguf": getattr(info, "gguf", None) or {},  # total (parameters), architecture, context_length
    }
