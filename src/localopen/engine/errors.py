"""The engine's failures, typed: the worker raises them, the protocol carries them by kind, and the
client raises the same class again, so every caller catches by type (never by comparing strings)."""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from localopen.core.errors import LocalopenError


class EngineError(LocalopenError):
    """The engine reported a failure in plain words."""

    kind: ClassVar[str] = "error"  # its name on the wire (protocol.Error.kind)

    def details(self) -> dict[str, Any]:
        """What travels beside the message (a subclass's own fields)."""
        return {}


class ModelLoadError(EngineError):
    """llama.cpp could not load the file, or no model is loaded. `damaged`: llama.cpp rejected the
    file itself (its tensors or metadata), as opposed to this machine (memory) or this build;
    `settings`: the load options asked for what cannot be (a KV-cache type this model's heads do
    not allow): neither the file nor the machine is to blame."""

    kind = "load"

    def __init__(self, message: str, damaged: bool = False, settings: bool = False) -> None:
        super().__init__(message)
        self.damaged, self.settings = damaged, settings

    def details(self) -> dict[str, Any]:
        return {"damaged": self.damaged, "settings": self.settings}


class ContextTooLongError(EngineError):
    """The model does not fit at this context, or a conversation is too long for the context."""

    kind = "context"

    def __init__(
        self,
        message: str,
        *,
        prompt_tokens: int | None = None,
        n_ctx: int | None = None,
        needed: int | None = None,
        available: int | None = None,
        fitting_ctx: int | None = None,
    ) -> None:
        super().__init__(message)
        self.prompt_tokens, self.n_ctx = prompt_tokens, n_ctx  # a too-long conversation
        self.needed, self.available, self.fitting_ctx = needed, available, fitting_ctx  # memory at this context

    def details(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "n_ctx": self.n_ctx,
            "needed": self.needed,
            "available": self.available,
            "fitting_ctx": self.fitting_ctx,
        }


@dataclass(frozen=True)
class TemplateOffer:
    """What a person can pick for a model without a chat template: the known templates and a suggestion."""

    options: list[str] = field(default_factory=list)
    suggested: str | None = None
    reason: str = ""


class NoTemplateError(EngineError):
    """The model's file has no chat template and none was chosen (never guessed silently)."""

    kind = "no_template"

    def __init__(self, message: str, choice: TemplateOffer | None = None) -> None:
        super().__init__(message)
        self.choice = choice or TemplateOffer()

    def details(self) -> dict[str, Any]:
        return asdict(self.choice)


class TemplateError(EngineError):
    """The chat template failed to render (a template bug, or a conversation it refuses)."""

    kind = "template"


class ToolsUnsupportedError(EngineError):
    """Tools were asked for, but this model's template does not offer them (or not in a way this can read)."""

    kind = "tools"


class EmbeddingsUnsupportedError(EngineError):
    """Embeddings were asked of a model that makes none (a chat model: its file names no pooling)."""

    kind = "no_embeddings"


class VisionUnsupportedError(EngineError):
    """Images were sent to a model loaded without a vision projector."""

    kind = "no_vision"


class BadRequestError(EngineError):
    """A request the loaded model cannot take as it is (a logit bias for a token it does not have)."""

    kind = "bad_request"


class EngineDied(EngineError):
    """The engine process ended without being asked to (crash, abort, out of memory, killed)."""

    kind = "died"
    how = "stopped answering"  # describe_exit's words
    by_signal = False  # a crash (segmentation fault, abort, illegal instruction), not a kill


class EngineTimeout(EngineError):
    """The engine did not answer in time."""

    kind = "timeout"


class EngineUnavailable(EngineError):
    """llama.cpp cannot be loaded in the engine process (a missing system library, a broken install)."""

    kind = "unavailable"


_BY_KIND: dict[str, type[EngineError]] = {
    cls.kind: cls
    for cls in (
        EngineError,
        ModelLoadError,
        ContextTooLongError,
        NoTemplateError,
        TemplateError,
        ToolsUnsupportedError,
        EmbeddingsUnsupportedError,
        VisionUnsupportedError,
        BadRequestError,
        EngineDied,
        EngineTimeout,
        EngineUnavailable,
    )
}


def from_wire(message: str, kind: str, details: dict[str, Any]) -> EngineError:
    """The typed error a worker's Error event stands for (an unknown kind is a plain EngineError)."""
    cls = _BY_KIND.get(kind, EngineError)
    if cls is ContextTooLongError:
        known = ("prompt_tokens", "n_ctx", "needed", "available", "fitting_ctx")
        return ContextTooLongError(message, **{k: details.get(k) for k in known})
    if cls is ModelLoadError:
        return ModelLoadError(message, bool(details.get("damaged")), bool(details.get("settings")))
    if cls is NoTemplateError:
        return NoTemplateError(
            message,
            TemplateOffer(
                list(details.get("options") or []), details.get("suggested"), str(details.get("reason") or "")
            ),
        )
    return cls(message)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        sig = -code
        names: dict[int, str] = {
            signal.SIGSEGV: "crashed (segmentation fault)",
            signal.SIGILL: "crashed (an instruction this CPU does not run)",
            signal.SIGABRT: "aborted inside llama.cpp",
            signal.SIGKILL: "was killed (out of memory, or by the system)",
            signal.SIGTERM: "was terminated",
        }
        if hasattr(signal, "SIGBUS"):
            names[signal.SIGBUS] = "crashed (bus error: the model file may have changed or be damaged)"
        return names.get(sig, f"ended by signal {sig}")
    return f"exited with code {code}"
