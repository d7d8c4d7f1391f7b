"""The GitSource kind: a path in a git repository whose manifests become desired state.

The controller fetches ``spec.url`` at ``spec.ref`` (exactly one of branch, tag or commit),
applies the manifests under ``spec.path`` every ``spec.interval``, and records in the status
which commit it fetched and applied and which objects it owns (its inventory).

``spec.interval`` is a whole number of seconds or a duration string of hours, minutes and
seconds such as ``90s``, ``5m`` or ``1h30m``, between 1 second and 24 hours.
"""

from __future__ import annotations

import posixpath
import re
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator

from agentic_sandbox.crds.meta import Condition, Model, Resource

KIND = "GitSource"

DEFAULT_INTERVAL = "5m"
MIN_INTERVAL_SECONDS = 1
MAX_INTERVAL_SECONDS = 24 * 3600

_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
# Full object names: SHA-1 (40 hex digits) or SHA-256 (64) repositories.
COMMIT = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")
# A conservative subset of git's ref name rules (git check-ref-format): no leading '-' or '/',
# no '..', no '@{', no control characters, spaces or any of ~^:?*[\ and no '.lock' ending.
REF_NAME = re.compile(r"^(?!-)(?!/)(?!.*\.\.)(?!.*@\{)(?!.*//)[^\x00-\x20~^:?*\[\\\x7f]+(?<!/)$")
# URL schemes git may fetch from. Others (such as ext::, which runs a command) are rejected.
URL_SCHEMES = ("https", "http", "ssh", "git", "file")
# scp-like syntax: [user@]host:path
_SCP_URL = re.compile(r"^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:(?!//)[^\s]+$")


class ConditionType(StrEnum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


def parse_interval(value: int | str) -> int:
    """Return ``value`` in seconds: an integer, or a duration such as ``90s``, ``5m``, ``1h30m``."""
    if isinstance(value, bool):
        raise ValueError(f"interval {value!r} is not a number of seconds or a duration")
    if isinstance(value, int):
        seconds = value
    else:
        text = value.strip()
        match = _DURATION.match(text)
        if text.isdigit():
            seconds = int(text)
        elif match is None or not text:
            raise ValueError(
                f"interval {value!r} is invalid; write seconds (300) or a duration of hours, "
                "minutes and seconds such as '90s', '5m' or '1h30m'"
            )
        else:
            hours, minutes, secs = (int(match.group(part) or 0) for part in ("h", "m", "s"))
            seconds = hours * 3600 + minutes * 60 + secs
    if not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
        raise ValueError(
            f"interval {value!r} is {seconds} s; it must be between {MIN_INTERVAL_SECONDS} s "
            f"and {MAX_INTERVAL_SECONDS} s (24h)"
        )
    return seconds


def check_url(url: str) -> str:
    """Accept the URL forms git fetches from safely; reject the rest with the accepted forms."""
    if not url or url != url.strip() or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError(f"url {url!r} is empty or contains spaces or control characters")
    if url.startswith("-"):
        raise ValueError(f"url {url!r} starts with '-', which git would read as an option")
    if url.startswith("/"):
        return url
    if "://" in url:
        scheme = urlsplit(url).scheme.lower()
        if scheme in URL_SCHEMES:
            return url
        raise ValueError(
            f"url scheme {scheme!r} is not accepted; use one of {', '.join(URL_SCHEMES)}, "
            "an scp-like address (git@host:repo.git) or an absolute path"
        )
    if "::" not in url and _SCP_URL.match(url):
        return url
    raise ValueError(
        f"url {url!r} is not a repository address; use https://host/repo.git, "
        "ssh://host/repo.git, git@host:repo.git, file:///path or an absolute path"
    )


def check_repository_path(path: str) -> str:
    """Normalize a path inside the repository; reject absolute paths and '..' components."""
    if "\x00" in path:
        raise ValueError("path contains a NUL character")
    if path.startswith("/"):
        raise ValueError(f"path {path!r} is absolute; write it relative to the repository root")
    normalized = posixpath.normpath(path) if path else "."
    if normalized == ".." or normalized.startswith("../"):
        raise ValueError(f"path {path!r} leaves the repository; remove the '..' components")
    return "" if normalized == "." else normalized


class GitRef(Model):
    """The revision to follow: exactly one of a branch, a tag or a full commit id."""

    branch: str | None = None
    tag: str | None = None
    commit: str | None = None

    @field_validator("branch", "tag")
    @classmethod
    def _check_ref_name(cls, value: str | None) -> str | None:
        if value is not None and (not REF_NAME.match(value) or value.endswith(".lock")):
            raise ValueError(
                f"{value!r} is not a valid git ref name; use letters, digits and '/', '-', "
                "'_', '.', without '..', spaces or a leading '-'"
            )
        return value

    @field_validator("commit")
    @classmethod
    def _check_commit(cls, value: str | None) -> str | None:
        if value is not None and not COMMIT.match(value):
            raise ValueError(
                f"commit {value!r} is not a full commit id; write all 40 (or 64) lowercase "
                "hexadecimal digits"
            )
        return value

    @model_validator(mode="after")
    def _check_exactly_one(self) -> GitRef:
        chosen = [name for name in ("branch", "tag", "commit") if getattr(self, name)]
        if len(chosen) != 1:
            raise ValueError(
                f"ref sets {', '.join(chosen) or 'nothing'}; set exactly one of branch, tag "
                "or commit"
            )
        return self

    def describe(self) -> str:
        """Return the ref as ``branch main``, ``tag v1`` or ``commit 0123abc…``."""
        if self.branch:
            return f"branch {self.branch}"
        if self.tag:
            return f"tag {self.tag}"
        return f"commit {self.commit}"


class GitSourceSpec(Model):
    url: str
    ref: GitRef = Field(default_factory=lambda: GitRef(branch="main"))
    # Directory inside the repository; "" is the repository root.
    path: str = ""
    # Seconds (an integer) or a duration string; see ``interval_seconds``.
    interval: int | str = DEFAULT_INTERVAL
    # Delete the objects this source applied that the repository no longer declares.
    prune: bool = True
    # Stop syncing; everything applied stays as it is.
    suspend: bool = False
    # Allow a commit whose path contains no manifest to prune everything this source applied.
    allow_empty: bool = False

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return check_repository_path(value)

    @field_validator("interval", mode="before")
    @classmethod
    def _check_interval(cls, value: Any) -> Any:
        if not isinstance(value, int | str) or isinstance(value, bool):
            raise ValueError(f"interval {value!r} is not a number of seconds or a duration")
        parse_interval(value)
        return value

    @property
    def interval_seconds(self) -> int:
        return parse_interval(self.interval)


class InventoryEntry(Model):
    """One object the source applied and owns."""

    kind: str
    namespace: str
    name: str


class ManifestIssue(Model):
    """A manifest of the applied commit that was not applied, with where and why."""

    file: str
    line: int | None = None
    field: str | None = None
    message: str


class OwnershipConflict(Model):
    """An object the repository declares that another source owns; it was left alone."""

    kind: str
    namespace: str
    name: str
    file: str
    owner: str


class GitSourceStatus(Model):
    """Observed state, written only by the git sync."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    last_fetched_commit: str | None = None
    last_applied_commit: str | None = None
    last_sync_time: datetime | None = None
    inventory: list[InventoryEntry] = Field(default_factory=list)
    manifest_errors: list[ManifestIssue] = Field(default_factory=list)
    conflicts: list[OwnershipConflict] = Field(default_factory=list)
    last_error: str | None = None

    def condition(self, type_: str) -> Condition | None:
        for condition in self.conditions:
            if condition.type == type_:
                return condition
        return None


class GitSource(Resource):
    """A git repository path synced into the store on an interval and on request."""

    KIND: ClassVar[str] = KIND

    kind: Literal["GitSource"] = "GitSource"
    spec: GitSourceSpec
    status: GitSourceStatus = Field(default_factory=GitSourceStatus)


def redact_url(url: str) -> str:
    """Return ``url`` without its user information, for messages, logs and listings."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
