"""Real git repositories for the git source tests: a bare remote, a work tree that pushes to it,
and a ``git daemon`` serving the remote on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

# Deadline for the daemon to accept connections; reached only when it fails to start.
DAEMON_START_SECONDS = 10.0

_GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=_GIT_ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"git {' '.join(args)} failed: {result.stderr}"
    return result.stdout.strip()


class Repository:
    """A bare repository ``remote`` and a clone ``work`` whose commits are pushed to it."""

    def __init__(self, root: Path, branch: str = "main") -> None:
        self.root = root
        self.remote = root / "origin.git"
        self.work = root / "work"
        self.branch = branch
        git("init", "--quiet", "--bare", "--initial-branch", branch, str(self.remote))
        git("init", "--quiet", "--initial-branch", branch, str(self.work))
        git("remote", "add", "origin", str(self.remote), cwd=self.work)

    @property
    def url(self) -> str:
        return str(self.remote)

    def write(self, path: str, text: str) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def remove(self, path: str) -> None:
        git("rm", "--quiet", "-r", path, cwd=self.work)

    def commit(self, message: str, *, push: bool = True) -> str:
        """Commit every change in the work tree, push it, and return the commit id."""
        git("add", "--all", cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        if push:
            self.push()
        return git("rev-parse", "HEAD", cwd=self.work)

    def push(self, *, force: bool = False) -> None:
        args = ["push", "--quiet", "origin", f"HEAD:refs/heads/{self.branch}"]
        if force:
            args.insert(1, "--force")
        git(*args, cwd=self.work)

    def reset_hard(self, commit: str) -> None:
        git("reset", "--quiet", "--hard", commit, cwd=self.work)

    def delete_branch(self) -> None:
        # Deleting the remote's current branch by push is refused, so delete it in place.
        git("--git-dir", str(self.remote), "update-ref", "-d", f"refs/heads/{self.branch}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GitDaemon:
    """``git daemon`` serving the repositories under ``base`` on a free loopback port."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, repository: Path) -> str:
        return f"git://127.0.0.1:{self.port}/{repository.relative_to(self.base)}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                f"--base-path={self.base}",
                str(self.base),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_GIT_ENV,
        )
        deadline = time.monotonic() + DAEMON_START_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "git daemon exited at start"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"git daemon did not listen on port {self.port}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def gitsource_doc(name: str, url: str, *, path: str = "apps", **spec: object) -> dict[str, object]:
    """Return a GitSource wire dict following branch main of ``url``."""
    return {
        "apiVersion": "sandbox.agentic.dev/v1alpha1",
        "kind": "GitSource",
        "metadata": {"name": name},
        "spec": {"url": url, "ref": {"branch": "main"}, "path": path, **spec},
    }
