"""Recent deployments: the guide's `git log --oneline -5`, read from the service's repository.

Usage::

    commits = list_recent_commits.fn(Path("/srv/emotionscare"), count=5)

Runs `git` with an argument list (never a shell string), bounded by a timeout. The Kubernetes
rollout history (tasks.kubernetes.get_rollout_history) says *when* each revision went out; the
commits say *what* went out.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from runbook.errors import RunbookError

__all__ = ["Commit", "GitLogFailed", "list_recent_commits"]


class GitLogFailed(RunbookError):
    """`git log` failed (not a repository, git missing, timed out)."""


class Commit(BaseModel):
    sha: str
    subject: str
    committed_at: str


@task(name="list_recent_commits", cache_policy=NO_CACHE)
def list_recent_commits(repo_path: Path, count: int = 5, timeout_s: float = 10.0) -> list[Commit]:
    """`git log --oneline -5`, with commit times."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo_path), "log", f"-{int(count)}", "--format=%h%x1f%cI%x1f%s"],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitLogFailed(f"git log in {repo_path}: {exc}") from exc
    commits = []
    for line in out.splitlines():
        sha, when, subject = [*line.split("\x1f"), "", ""][:3]
        commits.append(Commit(sha=sha, subject=subject, committed_at=when))
    return commits
