"""Look at one manifest file and classify what is there now.

Observation runs in a worker thread (it reads files and validates documents) and touches no
shared state: it gets the signature and content hash recorded last time and returns a value.
Unchanged files cost one ``stat``. A file whose signature changed is read and hashed; only when
the hash changed too is it parsed and validated.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from enum import StrEnum

from agentic_sandbox.crds import documents
from agentic_sandbox.crds.manifest import ParsedDocument, load_manifest_file
from agentic_sandbox.errors import ManifestError
from agentic_sandbox.sources.scan import Signature


class FileCondition(StrEnum):
    MISSING = "missing"  # not there, or not a regular file
    EMPTY = "empty"  # zero bytes: perhaps an editor truncated it and is about to write
    UNCHANGED = "unchanged"  # same signature, or same content as last time
    VALID = "valid"
    INVALID = "invalid"


@dataclass(frozen=True)
class Observation:
    path: str
    condition: FileCondition
    signature: Signature | None = None
    digest: str | None = None
    real_path: str | None = None
    documents: list[ParsedDocument] = field(default_factory=list)
    error: ManifestError | None = None
    # Whether the content was read and hashed, not only the signature compared.
    content_read: bool = False


@dataclass(frozen=True)
class Previous:
    """The signature and hash recorded for a file last time. ``force`` skips the shortcuts
    that skip unchanged files."""

    signature: Signature | None = None
    digest: str | None = None
    force: bool = False


def observe_file(path: str, previous: Previous) -> Observation:
    """Stat, read and parse ``path`` as far as needed to tell whether it changed."""
    try:
        with open(path, "rb") as file:
            status = os.fstat(file.fileno())
            if not stat.S_ISREG(status.st_mode):
                return Observation(path, FileCondition.MISSING)
            signature = Signature.of(status)
            if signature == previous.signature and not previous.force:
                return Observation(path, FileCondition.UNCHANGED, signature, previous.digest)
            content = file.read(documents.MAX_MANIFEST_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return Observation(path, FileCondition.MISSING)
    except OSError as error:
        return _unreadable(path, error)

    real_path = os.path.realpath(path)
    if not content:
        return Observation(path, FileCondition.EMPTY, signature, None, real_path)
    digest = hashlib.sha256(content).hexdigest()
    if digest == previous.digest and not previous.force:
        return Observation(
            path, FileCondition.UNCHANGED, signature, digest, real_path, content_read=True
        )
    return _parse(path, signature, digest, real_path)


def _parse(path: str, signature: Signature, digest: str, real_path: str) -> Observation:
    # NOTE: the manifest loader reads the file again, so when the file changes between the
    # two reads the documents are newer than ``digest``. The change event that follows makes
    # the source read the file once more, so the store still converges to the final content.
    try:
        parsed = load_manifest_file(path)
    except ManifestError as error:
        return Observation(
            path,
            FileCondition.INVALID,
            signature,
            digest,
            real_path,
            error=error,
            content_read=True,
        )
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return Observation(path, FileCondition.MISSING)
    except OSError as error:
        return _unreadable(path, error)
    return Observation(
        path, FileCondition.VALID, signature, digest, real_path, documents=parsed, content_read=True
    )


def _unreadable(path: str, error: OSError) -> Observation:
    # A file that exists but cannot be read (permissions, I/O error) keeps what was applied
    # from it, like a file that fails to parse.
    reason = error.strerror or type(error).__name__
    message = f"file cannot be read: {reason}; check its permissions"
    return Observation(path, FileCondition.INVALID, error=ManifestError(message, file=path))
