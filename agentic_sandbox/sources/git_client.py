"""Fetch a git repository with the git command into a cache, and export one commit's files.

Each GitSource has its own bare repository under the cache directory. ``fetch`` brings the
followed ref into it and returns the exact commit id; ``export`` writes the files of one
path at one commit into a fresh directory (a clean tree: nothing from an earlier commit,
no index, no untracked files).

Every git call runs with a timeout, ``GIT_TERMINAL_PROMPT=0``, no credential helper, no
system or global configuration and no hooks, so it can never wait for a password or run
code from the repository. Messages and logs never show credentials written in the URL.

Healing: lock files left by a git process that was killed are removed before each fetch
(one source's git calls never overlap, so any lock found then is stale). A forced update of
the ref is taken as it is (``+`` refspecs). When a fetch fails for a reason other than the
remote being unreachable or the ref missing, the cache is cloned again from scratch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import tarfile
from dataclasses import dataclass
from pathlib import Path

from agentic_sandbox.crds.gitsource import GitRef, redact_url
from agentic_sandbox.errors import SandboxError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 120.0
# The ref a fetch stores the followed branch, tag or commit under, inside the cache.
SYNC_REF = "refs/sync/head"
# Options that keep git from reading user configuration, prompting or running hooks.
_SAFE_OPTIONS = (
    "-c",
    "credential.helper=",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "core.askPass=",
    "-c",
    "gc.auto=0",
)
# Phrases of git's (LC_ALL=C) messages that mean the remote or the ref is the problem, so
# cloning the cache again would not help.
_REMOTE_FAILURES = (
    "could not read from remote repository",
    "couldn't find remote ref",
    "unable to connect",
    "connection refused",
    "connection timed out",
    "could not resolve host",
    "does not appear to be a git repository",
    "repository not found",
    "not found",
    "authentication failed",
    "unable to access",
    "timed out after",
    "no such remote ref",
    "not our ref",
)
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


class GitError(SandboxError):
    """A git command failed; the message is safe to show (credentials removed)."""

    reason = "GitFailed"


class GitTimeout(GitError):
    reason = "GitTimeout"


def redact(text: str) -> str:
    """Remove ``user:password@`` from every URL in ``text``."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


def git_environment() -> dict[str, str]:
    """Return the environment of every git call: no prompts, no user or system config."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
        "HOME": os.devnull,
    }
    if "SSH_AUTH_SOCK" in os.environ:
        env["SSH_AUTH_SOCK"] = os.environ["SSH_AUTH_SOCK"]
    return env


@dataclass(frozen=True)
class GitResult:
    stdout: str
    stderr: str


async def run_git(*args: str, git_dir: Path | None, timeout: float) -> GitResult:  # noqa: ASYNC109
    """Run ``git ARGS`` and return its output; raise GitError when it fails or times out.

    The process runs in its own process group, which is killed on timeout or cancellation.
    """
    command = ["git", *_SAFE_OPTIONS]
    if git_dir is not None:
        command += ["--git-dir", str(git_dir)]
    command += list(args)
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=git_environment(),
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        await _kill(process)
        raise GitTimeout(f"git {args[0]} timed out after {timeout:g} s") from None
    except asyncio.CancelledError:
        await _kill(process)
        raise
    if process.returncode != 0:
        message = redact(stderr.decode(errors="replace").strip()) or f"exit {process.returncode}"
        raise GitError(f"git {args[0]} failed: {message}")
    return GitResult(stdout.decode(errors="replace"), stderr.decode(errors="replace"))


async def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


def is_remote_failure(error: GitError) -> bool:
    """Return whether ``error`` blames the remote or the ref, not the local cache."""
    if isinstance(error, GitTimeout):
        return True
    text = str(error).lower()
    return any(phrase in text for phrase in _REMOTE_FAILURES)


class GitCache:
    """The cached bare repository of one source, and the trees exported from it.

    Callers serialize calls on one cache.
    """

    def __init__(self, directory: Path, url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        self.directory = directory
        self.url = url
        self.timeout = timeout
        self.git_dir = directory / "repo.git"
        self.trees = directory / "trees"

    async def fetch(self, ref: GitRef) -> str:
        """Fetch ``ref`` and return its commit id. Raises GitError naming the cause."""
        await asyncio.to_thread(self._remove_stale_locks)
        try:
            await self._ensure_repository()
            return await self._fetch(ref)
        except GitError as error:
            if is_remote_failure(error):
                raise
            logger.warning(
                "git cache unusable; cloning again: %s",
                error,
                extra={"url": redact_url(self.url), "cache": str(self.directory)},
            )
        await asyncio.to_thread(shutil.rmtree, self.git_dir, True)
        await self._ensure_repository()
        return await self._fetch(ref)

    async def _ensure_repository(self) -> None:
        if await asyncio.to_thread((self.git_dir / "HEAD").is_file):
            return
        await asyncio.to_thread(shutil.rmtree, self.git_dir, True)
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        await run_git("init", "--quiet", "--bare", str(self.git_dir), git_dir=None, timeout=30)

    async def _fetch(self, ref: GitRef) -> str:
        if ref.commit:
            return await self._fetch_commit(ref.commit)
        if ref.branch:
            refspec = f"+refs/heads/{ref.branch}:{SYNC_REF}"
        else:
            refspec = f"+refs/tags/{ref.tag}:{SYNC_REF}"
        await self._git("fetch", "--quiet", "--no-tags", "--force", "--", self.url, refspec)
        return await self._resolve(SYNC_REF)

    async def _fetch_commit(self, commit: str) -> str:
        if await self._has_commit(commit):
            return commit
        try:
            # Servers speaking protocol version 2 serve any reachable commit by id.
            await self._git("fetch", "--quiet", "--no-tags", "--", self.url, commit)
        except GitError as error:
            if not is_remote_failure(error):
                raise
            refspecs = ("+refs/heads/*:refs/sync/heads/*", "+refs/tags/*:refs/sync/tags/*")
            await self._git("fetch", "--quiet", "--no-tags", "--force", "--", self.url, *refspecs)
        if not await self._has_commit(commit):
            raise GitError(f"commit {commit} is not in the repository; check spec.ref.commit")
        await self._git("update-ref", SYNC_REF, commit)
        return commit

    async def _has_commit(self, commit: str) -> bool:
        try:
            await self._git("cat-file", "-e", f"{commit}^{{commit}}")
        except GitError:
            return False
        return True

    async def _resolve(self, name: str) -> str:
        result = await self._git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
        return result.stdout.strip()

    async def path_kind(self, commit: str, path: str) -> str | None:
        """Return ``tree`` or ``blob`` for ``path`` at ``commit``, or None when it is absent."""
        try:
            result = await self._git("cat-file", "-t", f"{commit}:{path}")
        except GitError:
            return None
        return result.stdout.strip()

    async def export(self, commit: str, path: str) -> Path | None:
        """Write the files under ``path`` at ``commit`` into a fresh tree; return its root.

        Returns None when ``path`` does not exist at ``commit``. A tree already exported for
        the same commit and path is reused. Older trees are removed.
        """
        kind = await self.path_kind(commit, path)
        if kind is None:
            return None
        if kind != "tree":
            raise GitError(f"path {path!r} is a {kind} at commit {commit[:12]}, not a directory")
        name = commit if not path else f"{commit}-{_path_digest(path)}"
        target = self.trees / name
        if not await asyncio.to_thread(target.is_dir):
            await self._export_into(commit, path, target)
        await asyncio.to_thread(_remove_other_trees, self.trees, name)
        return target

    async def _export_into(self, commit: str, path: str, target: Path) -> None:
        staging = self.trees / f".{target.name}.partial"
        archive = self.trees / f".{target.name}.tar"
        await asyncio.to_thread(shutil.rmtree, staging, True)
        await asyncio.to_thread(staging.mkdir, parents=True)
        treeish = f"{commit}:{path}" if path else commit
        try:
            await self._git("archive", "--format=tar", "-o", str(archive), treeish)
            await asyncio.to_thread(_extract, archive, staging)
        finally:
            await asyncio.to_thread(archive.unlink, True)
        await asyncio.to_thread(os.replace, staging, target)

    async def _git(self, *args: str) -> GitResult:
        return await run_git(*args, git_dir=self.git_dir, timeout=self.timeout)

    def _remove_stale_locks(self) -> None:
        if not self.git_dir.is_dir():
            return
        for lock in self.git_dir.rglob("*.lock"):
            logger.info("removing stale git lock file", extra={"path": str(lock)})
            lock.unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete the cache directory and everything in it."""
        shutil.rmtree(self.directory, ignore_errors=True)


def _path_digest(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:12]


def _extract(archive: Path, target: Path) -> None:
    # The "data" filter rejects absolute names, links leaving the tree and special files.
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise GitError(f"the commit's files cannot be written out: {error}") from error


def _remove_other_trees(trees: Path, keep: str) -> None:
    if not trees.is_dir():
        return
    for entry in trees.iterdir():
        if entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)
