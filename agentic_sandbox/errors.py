"""The project's own error types.

Third-party errors (sqlite3, docker-py, ruamel.yaml, httpx) are translated into these at each
layer boundary and chained with ``raise ... from``. Callers decide what to do from the class and
from ``retryable``, never from the text of a message.

    SandboxError                      retryable unless a subclass says otherwise
    ├── InvalidResource               terminal: a manifest or spec is wrong; carries field errors
    │   └── ManifestError             terminal: a file or document failed to parse or validate
    ├── StoreError
    │   ├── NotFound                  terminal for the request
    │   ├── AlreadyExists             terminal for the request
    │   ├── Conflict                  retryable: resourceVersion precondition failed, re-read
    │   ├── Expired                   retryable: watch history compacted, relist then rewatch
    │   ├── OwnedByOtherSource        terminal: another source (file, API, GitSource) owns it
    │   └── StoreUnavailable          retryable: the database cannot be read or written
    ├── RuntimeFailure
    │   ├── RuntimeUnavailable        retryable: daemon down, connection refused
    │   │   └── RuntimeTimeout        retryable: a runtime call exceeded its deadline
    │   ├── RuntimeObjectNotFound     retryable: the object vanished between observe and act
    │   ├── ImageNotFound             terminal until the image is built or the spec changes
    │   ├── NameConflict              terminal: the name is taken by an object we do not own
    │   ├── InvalidRuntimeSpec        terminal: the runtime rejected the spec (bad mount, network)
    │   └── RuntimeAPIError           retryable: any other error the runtime returned
    └── AgentError
        └── AgentNotConnected         retryable: the sandbox's agent has no live connection
"""

from __future__ import annotations

from dataclasses import dataclass


class SandboxError(Exception):
    """Base class of every error this package raises on purpose."""

    retryable: bool = True
    reason: str = "InternalError"


@dataclass(frozen=True)
class FieldError:
    """One invalid field: its dotted path, the offending value and what is accepted."""

    path: str
    message: str
    value: object = None
    line: int | None = None

    def render(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}{self.message}"


class InvalidResource(SandboxError):
    """A resource failed validation. ``errors`` lists every invalid field."""

    retryable = False
    reason = "Invalid"

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class ManifestError(InvalidResource):
    """A manifest file or one of its documents failed to parse or validate."""

    reason = "InvalidManifest"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(message, errors)
        self.file = file
        self.line = line

    def __str__(self) -> str:
        location = ""
        if self.file is not None:
            location = self.file if self.line is None else f"{self.file}:{self.line}"
            location += ": "
        return location + str(self.args[0])


class StoreError(SandboxError):
    """Base class of store failures."""

    reason = "StoreError"


class NotFound(StoreError):
    retryable = False
    reason = "NotFound"


class AlreadyExists(StoreError):
    retryable = False
    reason = "AlreadyExists"


class Conflict(StoreError):
    """A write's resourceVersion precondition did not match the stored object."""

    reason = "Conflict"


class Expired(StoreError):
    """A watch asked for history that the store no longer keeps."""

    reason = "Expired"


class OwnedByOtherSource(StoreError):
    """A source wrote to an object that another source owns; ``owner`` is that source's id."""

    retryable = False
    reason = "OwnedByOtherSource"

    def __init__(self, message: str, *, owner: str) -> None:
        super().__init__(message)
        self.owner = owner


class StoreUnavailable(StoreError):
    reason = "StoreUnavailable"


class RuntimeFailure(SandboxError):
    """Base class of runtime (Docker, libvirt) failures."""

    reason = "RuntimeError"


class RuntimeUnavailable(RuntimeFailure):
    reason = "RuntimeUnavailable"
    # Seconds after which a retry may succeed, when the runtime knows (an open circuit does).
    retry_after: float | None = None


class RuntimeTimeout(RuntimeUnavailable):
    reason = "RuntimeTimeout"


class RuntimeObjectNotFound(RuntimeFailure):
    reason = "RuntimeObjectNotFound"


class ImageNotFound(RuntimeFailure):
    retryable = False
    reason = "ImageNotFound"


class NameConflict(RuntimeFailure):
    retryable = False
    reason = "NameConflict"


class InvalidRuntimeSpec(RuntimeFailure):
    """The spec cannot work on this host. ``field`` names the spec field at fault, when known."""

    retryable = False
    reason = "InvalidSpec"

    def __init__(self, message: str, *, field: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class RuntimeAPIError(RuntimeFailure):
    reason = "RuntimeAPIError"


class AgentError(SandboxError):
    """Base class of failures to reach or use an in-sandbox agent."""

    reason = "AgentError"


class AgentNotConnected(AgentError):
    reason = "AgentNotConnected"
