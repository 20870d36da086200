"""The Hugging Face Hub, through huggingface_hub, with the same environment as every Hub tool.

HF_ENDPOINT, HF_TOKEN, HF_HOME and HF_HUB_OFFLINE are read at call time (huggingface_hub reads
some at import) and passed explicitly. Offline means no request at all. Every call has a short
timeout so nothing blocks start-up. The token is never printed or logged.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from localopen.core.errors import LocalopenError

DEFAULT_ENDPOINT = "https://huggingface.co"
QUANT_RE = re.compile(r"(?i)(?:^|[-_.])((?:IQ|Q)\d(?:_[A-Z0-9]+)*|BF16|F16|F32|MXFP4)(?=[-_.]|$)")
SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


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


def quant_of(filename: str) -> str | None:
    m = QUANT_RE.search(SPLIT_RE.sub(".gguf", filename).removesuffix(".gguf"))
    return m.group(1).upper() if m else None


def is_offline(settings: dict | None = None) -> bool:
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return env in ("1", "true", "yes", "on") or bool((settings or {}).get("offline"))


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def token() -> str | None:
    """HF_TOKEN, else huggingface_hub's stored login (HF_HOME); never printed."""
    value = os.environ.get("HF_TOKEN")
    if value:
        return value
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:  # noqa: BLE001 - no stored login is fine
        return None


def explain_http(status: int, repo: str, filename: str | None = None) -> HubError:
    what = f"{repo}/{filename}" if filename else repo
    if status in (401, 403):
        return GatedError(
            f"{repo} is gated: accept its licence on https://huggingface.co/{repo} while logged in, then set "
            "a token (HF_TOKEN, or `hf auth login`). localopen never shows or logs the token.")
    if status == 404:
        return NotFoundError(f"{what} was not found on the Hub (check the repository and file name).")
    if status == 429:
        return HubError("The Hub is rate-limiting requests; wait a minute and try again.")
    return HubError(f"The Hub answered HTTP {status} for {what}; try again later.")


class Hub:
    def __init__(self, settings: dict | None = None, timeout: float = 10.0) -> None:
        self.settings = settings or {}
        self.timeout = timeout

    def _check_online(self) -> None:
        if is_offline(self.settings):
            raise OfflineError("localopen is offline (offline setting or HF_HUB_OFFLINE): no Hub request made.")

    def _api(self) -> Any:
        from huggingface_hub import HfApi

        return HfApi(endpoint=endpoint(), token=token() or False)

    def _wrap(self, exc: Exception, repo: str, filename: str | None = None) -> HubError:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return explain_http(status, repo, filename)
        name = type(exc).__name__
        if "Offline" in name:
            return OfflineError("The Hub cannot be reached (offline).")
        return HubError(f"The Hub could not be reached ({name}). Check the connection, or work offline.")

    def files(self, repo: str, revision: str | None = None) -> list[RemoteFile]:
        """Every file of a repo with exact size and sha256 (LFS)."""
        self._check_online()
        try:
            info = self._api().model_info(repo, revision=revision, files_metadata=True, timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001 - huggingface_hub raises many types
            raise self._wrap(exc, repo) from exc
        out = []
        for s in info.siblings or []:
            lfs = getattr(s, "lfs", None)
            out.append(RemoteFile(repo, s.rfilename, getattr(s, "size", None) or (lfs.size if lfs else None),
                                  lfs.sha256 if lfs else None, info.sha or revision or "main"))
        return out

    def model_info(self, repo: str) -> dict[str, Any]:
        """model_info as JSON-like data (for provisional grades of repos outside the catalog)."""
        self._check_online()
        try:
            info = self._api().model_info(repo, timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001
            raise self._wrap(exc, repo) from exc
        return _info_dict(info)

    def search(self, query: str, sort: str = "downloads", limit: int = 20) -> list[dict[str, Any]]:
        self._check_online()
        sort_key = {"downloads": "downloads", "likes": "likes", "recent": "lastModified",
                    "lastModified": "lastModified"}.get(sort, "downloads")
        try:
            found = self._api().list_models(filter="gguf", search=query or None, sort=sort_key, limit=limit,
                                            expand=["cardData", "siblings", "downloads", "likes", "lastModified",
                                                    "gated", "tags"])
            return [_info_dict(m) for m in found]
        except Exception as exc:  # noqa: BLE001
            raise self._wrap(exc, query or "search") from exc


def _info_dict(info: Any) -> dict[str, Any]:
    card = getattr(info, "card_data", None)
    card_dict = card.to_dict() if hasattr(card, "to_dict") else (card or {})
    last = getattr(info, "last_modified", None)
    return {
        "id": info.id,
        "cardData": card_dict,
        "tags": list(getattr(info, "tags", None) or []),
        "gated": getattr(info, "gated", False),
        "downloads": getattr(info, "downloads", None),
        "likes": getattr(info, "likes", None),
        "lastModified": last.isoformat() if hasattr(last, "isoformat") else last,
        "files": [s.rfilename for s in (getattr(info, "siblings", None) or [])],
    }
