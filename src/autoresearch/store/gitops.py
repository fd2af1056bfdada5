"""The few git operations the harness needs, through the real `git` command."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from autoresearch.core.errors import UserError

AUTORESEARCH_REFS = "refs/autoresearch/"  # the harness's own refs: attempts, bundles
ATTEMPT_REF_PREFIX = AUTORESEARCH_REFS + "attempts"
# Commits made by the harness need an identity even on machines where the user set none.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "autoresearch", "GIT_AUTHOR_EMAIL": "autoresearch@localhost",
    "GIT_COMMITTER_NAME": "autoresearch", "GIT_COMMITTER_EMAIL": "autoresearch@localhost",
}


class GitError(UserError):
    """A git command failed; the message is one line."""


def git(repo: Path, *args: str, check: bool = True, extra_env: dict[str, str] | None = None,
        stdin: str | None = None, strip: bool = True) -> str:
    env = {**os.environ, **{k: v for k, v in _IDENTITY.items() if k not in os.environ}, **(extra_env or {})}
    try:
        result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, input=stdin)
    except FileNotFoundError:
        raise GitError("git is not installed: install it (e.g. `apt-get install git`) and try again") from None
    if check and result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise GitError(f"git {' '.join(args[:2])} failed: {detail[-1] if detail else 'exit ' + str(result.returncode)}")
    return result.stdout.strip() if strip else result.stdout


def init_repo(repo: Path, branch: str = "main") -> None:
    git(repo, "init", "-q", "-b", branch)


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def current_branch(repo: Path) -> str:
    """The checked-out branch ("HEAD" when detached). A plain repository's .git/HEAD says it without
    starting git (this is asked several times per experiment); a worktree or anything else asks git."""
    try:
        text = (Path(repo) / ".git" / "HEAD").read_text().strip()
    except OSError:
        text = ""
    if text.startswith("ref: refs/heads/"):
        return text[len("ref: refs/heads/"):]
    return git(repo, "rev-parse", "--abbrev-ref", "HEAD")


def commit_paths(repo: Path, paths: list[str], message: str, allow_empty: bool = False) -> str:
    """Commit the current content of `paths` (and nothing else); returns the new commit."""
    git(repo, "add", "--all", "--", *paths)
    args = ["commit", "-q", "--no-verify", "-m", message, "--", *paths]
    if allow_empty:
        args.insert(1, "--allow-empty")
    git(repo, *args)
    return head(repo)


def changed_paths(repo: Path, paths: list[str]) -> list[str]:
    """Which of `paths` differ from HEAD in the working tree or the index (new, modified or deleted)."""
    fields = git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *paths, strip=False).split("\0")
    changed, i = set(), 0
    while i < len(fields):
        entry, i = fields[i], i + 1
        if len(entry) > 3:
            changed.add(entry[3:])
            if entry[0] in "RC":  # a rename or copy: its old name follows
                i += 1
    return sorted(changed)


def diff(repo: Path, parent: str, commit: str) -> str:
    """The exact patch (not stripped: a trailing blank context line belongs to it)."""
    return git(repo, "diff", parent, commit, strip=False)


def reset_branch(repo: Path, commit: str) -> None:
    """Move the branch back to `commit`, restoring the files it changed but keeping other local edits."""
    git(repo, "reset", "-q", "--keep", commit)


def save_attempt_ref(repo: Path, name: str, commit: str) -> str:
    """Keep a commit reachable (and safe from gc) after the branch moves away from it."""
    ref = f"{ATTEMPT_REF_PREFIX}/{name}"
    git(repo, "update-ref", ref, commit)
    return ref


def commit_files(repo: Path, parent: str, files: dict[str, str], message: str) -> str:
    """A commit of `files` on top of `parent` without touching the working tree, the index or any
    branch (several candidates can be made from one best while others run)."""
    index = Path(git(repo, "rev-parse", "--git-dir"))
    index = (index if index.is_absolute() else repo / index) / f"autoresearch-index-{os.getpid()}"
    env = {"GIT_INDEX_FILE": str(index)}
    try:
        git(repo, "read-tree", parent, extra_env=env)
        for path, text in files.items():
            blob = git(repo, "hash-object", "-w", "--stdin", extra_env=env, stdin=text)
            git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", extra_env=env)
        tree = git(repo, "write-tree", extra_env=env)
        return git(repo, "commit-tree", tree, "-p", parent, "-m", message, extra_env=env)
    finally:
        index.unlink(missing_ok=True)


def revert_onto(repo: Path, base: str, change: tuple[str, str], message: str) -> str | None:
    """A commit on top of `base` with the change from `change` = (parent, commit) taken back out,
    made without touching the working tree; None when that change cannot come out on its own (the
    lines it changed were changed again later). The patch has no context lines, so a neighbour
    changed later does not stand in the way."""
    patch = git(repo, "diff", "-U0", *change, strip=False)
    index = Path(git(repo, "rev-parse", "--git-dir"))
    index = (index if index.is_absolute() else repo / index) / f"autoresearch-revert-{os.getpid()}"
    env = {"GIT_INDEX_FILE": str(index)}
    try:
        git(repo, "read-tree", base, extra_env=env)
        applied = subprocess.run(["git", "-C", str(repo), "apply", "--cached", "--unidiff-zero", "-R", "-"],
                                 input=patch,
                                 capture_output=True, text=True, env={**os.environ, **env})
        if applied.returncode != 0:
            return None
        tree = git(repo, "write-tree", extra_env=env)
        return git(repo, "commit-tree", tree, "-p", base, "-m", message, extra_env=env)
    finally:
        index.unlink(missing_ok=True)


def move_branch(repo: Path, branch: str, commit: str) -> None:
    """Point `branch` at `commit`; when it is checked out here, the working tree follows."""
    if current_branch(repo) == branch:
        reset_branch(repo, commit)
    else:
        git(repo, "update-ref", f"refs/heads/{branch}", commit)


def file_at(repo: Path, commit: str, path: str) -> bytes | None:
    result = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True)
    return result.stdout if result.returncode == 0 else None


def is_ancestor(repo: Path, maybe_ancestor: str, commit: str) -> bool:
    return subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", maybe_ancestor, commit]).returncode == 0


def ref_snapshot(repo: Path, ignore: tuple[str, ...] = ()) -> dict[str, str]:
    """Every ref and what HEAD points at: compared after a run to catch rewritten history. Refs
    under the `ignore` prefixes (those a coordinator moves while the run goes on) are left out."""
    lines = git(repo, "for-each-ref", "--format=%(objectname) %(refname)").splitlines()
    refs = {name: sha for sha, name in (line.split(" ", 1) for line in lines) if not name.startswith(ignore)}
    sha, name = git(repo, "rev-parse", "HEAD", "--symbolic-full-name", "HEAD").splitlines()
    refs["HEAD"] = name if name.startswith("refs/") else sha  # the branch it points at, or the commit when detached
    return refs


def restore_refs(repo: Path, snapshot: dict[str, str], ignore: tuple[str, ...] = ()) -> list[str]:
    """Put refs back as in `snapshot` (taken with the same `ignore`); returns the names that had changed."""
    now = ref_snapshot(repo, ignore) if _usable(repo) else {}
    changed = sorted(name for name in set(snapshot) | set(now) if snapshot.get(name) != now.get(name))
    for name in changed:
        if name == "HEAD":
            continue
        if name in snapshot:
            git(repo, "update-ref", name, snapshot[name])
        else:
            git(repo, "update-ref", "-d", name)
    if "HEAD" in changed:
        target = snapshot["HEAD"]
        if target.startswith("refs/"):
            git(repo, "symbolic-ref", "HEAD", target)
        else:
            git(repo, "update-ref", "--no-deref", "HEAD", target)
    if changed:
        git(repo, "reset", "-q", "--hard")  # the working tree follows the restored branch
    return changed


def _usable(repo: Path) -> bool:
    return git(repo, "rev-parse", "--git-dir", check=False) != ""
