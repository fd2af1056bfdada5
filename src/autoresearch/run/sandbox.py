"""Sandbox: what a run of agent-written code may see and do.

With bubblewrap (Linux, Debian package `bubblewrap`) a run gets its own network, process and IPC
namespaces (no network at all), a read-only view of the machine with the user's home hidden, the
workspace read-only, the harness state (`.autoresearch/`: ledger, logs, other runs) hidden, only the
data files the policy names, and one writable scratch directory. Its processes all die with it.

Without bubblewrap (macOS, or Linux without the package) the run is an ordinary process: the
harness still strips secrets from its environment, limits its memory and process count, kills its
process group (and stray children it can find) at the timeout and restores frozen files; the rest
is not enforced, and `not_enforced()` says what, once.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch.core.errors import UserError

BWRAP = "bwrap"


@dataclass(frozen=True)
class Policy:
    """What one sandboxed command may touch. Paths are absolute."""
    workdir: Path  # the workspace; visible read-only, current directory of the command
    writable: tuple[Path, ...] = ()  # scratch directories, the only places it may write
    readable: tuple[Path, ...] = ()  # extra files or directories visible read-only
    hidden: tuple[Path, ...] = ()  # directories that must look empty (harness state, data)
    bind_files: dict[Path, Path] = field(default_factory=dict)  # target -> source, read-only, placed after hiding
    network: bool = False
    workdir_writable: bool = False  # a disposable checkout the run may write in (checkpoints, logs in place)
    protected: tuple[Path, ...] = ()  # inside a writable workdir, read-only still (frozen files, .git)


class Sandbox:
    """A way to run a command under a Policy. `wrap` returns the command line to start."""
    name = "none"
    isolates = False  # filesystem, network and process namespaces

    def wrap(self, command: list[str], policy: Policy) -> list[str]:
        return list(command)

    def not_enforced(self) -> list[str]:
        items = ["no network isolation",
                 "a run can read everything the user can, the validation data included",
                 "a run can write where the user can (frozen files, git refs and the ledger are repaired after it)",
                 "children that leave the process group are found by an environment marker only"]
        if not Path("/proc").is_dir():
            items.append("no process-count limit and no memory limit beyond the address space")
        return items


class Bubblewrap(Sandbox):
    name = "bubblewrap"
    isolates = True

    def __init__(self, executable: str):
        self.executable = executable

    def wrap(self, command: list[str], policy: Policy) -> list[str]:
        args = [self.executable, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
                "--unshare-uts", "--unshare-cgroup-try"]
        if not policy.network:
            args.append("--unshare-net")
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        for device in sorted(Path("/dev").glob("nvidia*")):  # GPUs stay usable; nothing else from /dev
            args += ["--dev-bind", str(device), str(device)]
        covered = [Path("/tmp")]
        home = Path.home()
        if home != Path("/") and home.exists():  # ~/.ssh, ~/.netrc, ~/.config/...: none of the run's business
            args += ["--tmpfs", str(home)]
            covered.append(home)
        for path in _python_paths():  # the interpreter and its packages may live under the home or /tmp
            if any(_under(path, hidden) for hidden in covered):
                args += ["--ro-bind", str(path), str(path)]
        around = [p for p in policy.hidden if _under(policy.workdir, p)]  # hidden, but for the workdir inside
        for path in around:
            args += ["--tmpfs", str(path)]
        args += ["--bind" if policy.workdir_writable else "--ro-bind", str(policy.workdir), str(policy.workdir)]
        for path in policy.protected:  # before what hides or replaces files: those binds win
            args += ["--ro-bind", str(path), str(path)]
        for path in policy.hidden:  # first hide, then put back only what the policy names
            if path not in around:
                args += ["--tmpfs", str(path)]
        for path in policy.readable:
            args += ["--ro-bind", str(path), str(path)]
        for target, source in policy.bind_files.items():  # after `readable`: an empty file wins inside it
            args += ["--ro-bind", str(source), str(target)]
        for path in policy.writable:
            args += ["--bind", str(path), str(path)]
        for path in policy.hidden:  # what is hidden is read-only too: a write there fails, and says where
            args += ["--remount-ro", str(path)]
        args += ["--chdir", str(policy.workdir), "--"]
        return args + list(command)

    def not_enforced(self) -> list[str]:
        return []


def _python_paths() -> list[Path]:
    """Where the interpreter, its packages and this package (an editable install too) live."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent,
             Path(__file__).resolve().parents[2]}
    paths.update(Path(p) for p in sys.path if p and Path(p).is_dir())
    resolved = sorted({p.resolve() for p in paths if p.exists()})
    return [p for p in resolved if not any(p != q and _under(p, q) for q in resolved)]  # outermost only


def _under(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
        return True
    except ValueError:
        return False


def find_sandbox(kind: str = "auto") -> Sandbox:
    """`auto`: bubblewrap when it is installed and works here, else none. `bwrap` insists on it."""
    if kind == "none":
        return Sandbox()
    executable = shutil.which(BWRAP)
    if executable and _bwrap_works(executable):
        return Bubblewrap(executable)
    if kind == "bwrap":
        raise SandboxError("bubblewrap is required by [sandbox] kind = \"bwrap\" but "
                           + ("does not work here (user namespaces disabled?)" if executable else
                              "is not installed: apt install bubblewrap"))
    return Sandbox()


class SandboxError(UserError):
    """The sandbox that the task asks for cannot be had here."""


_WORKS: dict[str, bool] = {}


def _bwrap_works(executable: str) -> bool:
    """bubblewrap can be installed yet unusable (no user namespaces in some containers)."""
    if executable not in _WORKS:
        import subprocess
        try:
            probe = subprocess.run([executable, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--dev", "/dev",
                                    "--proc", "/proc", "true"], capture_output=True, timeout=20)
            _WORKS[executable] = probe.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _WORKS[executable] = False
    return _WORKS[executable]


def gpu_visible(env: dict[str, str] | None = None) -> bool:
    """Whether a run may use an NVIDIA GPU (then address-space limits would break CUDA)."""
    env = os.environ if env is None else env
    return any(Path("/dev").glob("nvidia[0-9]*")) and env.get("CUDA_VISIBLE_DEVICES", "x") not in ("", "-1")
