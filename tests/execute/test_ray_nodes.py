"""A Ray cluster of two nodes on this machine, each in its own network namespace (a veth pair
between them), the worker node without the head's prepared data: the study runs experiments on
both, the worker node is killed mid-run, its experiment runs again on the head, nothing is lost."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import git, ledger_for, set_line
from helpers import consistent_record

from autoresearch.store.templates import init_workspace
from autoresearch.store.workspace import Workspace

pytestmark = pytest.mark.slow
RAY = Path(sys.executable).with_name("ray")
HEAD, WORKER = ("arhead", "10.77.0.1"), ("arwork", "10.77.0.2")


def _can_make_namespaces() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None or not RAY.exists():
        return False
    probe = subprocess.run(["ip", "netns", "add", "arprobe"], capture_output=True)
    subprocess.run(["ip", "netns", "del", "arprobe"], capture_output=True)
    return probe.returncode == 0


def _tools_missing_in_ci() -> bool:
    """In CI, as root, our setup must have installed iproute2 and Ray: their absence fails the test."""
    return os.environ.get("CI") == "true" and os.geteuid() == 0 and (shutil.which("ip") is None or not RAY.exists())


needs_namespaces = pytest.mark.skipif(
    not _can_make_namespaces() and not _tools_missing_in_ci(),
    reason="needs root, iproute2, Ray and the right to make network namespaces")


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


@pytest.fixture
def two_nodes(tmp_path, shakespeare_512):
    """The head in one namespace, the worker in another; the worker's filesystem view hides the
    head's cache (its prepared data), and its own cache holds only the raw texts."""
    for name, _ in (HEAD, WORKER):
        sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
    sh("ip", "link", "add", "arveth0", "netns", HEAD[0], "type", "veth", "peer", "name", "arveth1", "netns", WORKER[0])
    for (name, address), link in ((HEAD, "arveth0"), (WORKER, "arveth1")):
        sh("ip", "-n", name, "addr", "add", f"{address}/24", "dev", link)
        sh("ip", "-n", name, "link", "set", link, "up")
    head_cache = shakespeare_512.parents[1]
    worker_cache = tmp_path / "worker-cache"
    shutil.copytree(head_cache / "raw", worker_cache / "raw")  # the source texts, not the prepared data
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_health_check_period_ms": "1000",
           "RAY_health_check_failure_threshold": "3"}
    common = ["--num-cpus", "1", "--object-store-memory", str(80 * 2**20), "--disable-usage-stats"]
    subprocess.run(["ip", "netns", "exec", HEAD[0], str(RAY), "start", "--head", "--node-ip-address", HEAD[1],
                    "--port", "6379", "--include-dashboard", "false", *common], env=env, check=True, capture_output=True)
    hide = f"mount -t tmpfs none {head_cache} && exec {RAY} start --block --address {HEAD[1]}:6379 " \
           f"--node-ip-address {WORKER[1]} {' '.join(common)}"
    worker = subprocess.Popen(["ip", "netns", "exec", WORKER[0], "unshare", "-m", "--propagation", "private",
                               "sh", "-c", hide], env={**env, "AUTORESEARCH_CACHE": str(worker_cache)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield {"env": env, "worker_cache": worker_cache}
    worker.kill()
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # where `ray.init()` looks next
    if current.exists() and HEAD[1] in current.read_text():
        current.unlink()
    for name, _ in (WORKER, HEAD):
        for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
            sh("kill", "-9", pid, check=False)
        sh("ip", "netns", "del", name, check=False)


def _wait_for_nodes(env: dict, count: int, timeout: float = 120) -> None:
    code = f"import ray; ray.init(address='{HEAD[1]}:6379', log_to_driver=False); " \
           f"print(sum(1 for n in ray.nodes() if n['Alive']))"
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run(["ip", "netns", "exec", HEAD[0], sys.executable, "-c", code], env=env,
                             capture_output=True, text=True)
        if out.stdout.strip().endswith(str(count)):
            return
        time.sleep(2)
    raise AssertionError(f"the cluster never had {count} nodes")


def _ran_on(ws: Path, address: str) -> bool:
    if not Workspace(ws).has_ledger():
        return False
    with Workspace(ws).open_ledger(readonly=True) as ledger:
        return any(address in r["metrics"].get("slot", "") for e in ledger.experiments() for r in ledger.runs(e.id))


def _training_in(namespace: str) -> dict[str, int]:
    """Runs training in a namespace now: pid -> experiment id (from the run's marker)."""
    found = {}
    for pid in sh("ip", "netns", "pids", namespace, check=False).stdout.split():
        try:
            if b"train.py" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            marker = next(v for v in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                          if v.startswith(b"AUTORESEARCH_RUN="))
        except (OSError, StopIteration):
            continue
        found[pid] = int(marker.split(b"-")[1])  # ray-<experiment>-<run>-<attempt>
    return found


@needs_namespaces
def test_two_nodes_in_their_own_namespaces_a_killed_node_loses_nothing(two_nodes, tmp_path, shakespeare_512):
    ws = init_workspace(tmp_path / "ws", template="llm", preset="cpu", tag="nodes", budget_seconds=8)
    set_line(ws / "autoresearch.toml", "vocab_size = ", "vocab_size = 512")
    set_line(ws / "autoresearch.toml", "eval_tokens = ", "eval_tokens = 20000")
    git(ws, "commit", "-qam", "vocab 512, a short evaluation")
    Workspace(ws).link_data(shakespeare_512)
    _wait_for_nodes(two_nodes["env"], 2)
    study = subprocess.Popen(["ip", "netns", "exec", HEAD[0], sys.executable, "-m", "autoresearch", "run",
                              "--executor", "ray", "--address", f"{HEAD[1]}:6379", "--slots", "2",
                              "--provider", "random", "--seed", "4", "--max-experiments", "7", "--plain"],
                             cwd=ws, env=two_nodes["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, victims = time.time() + 600, {}
    while not victims and time.time() < deadline and study.poll() is None:
        if _ran_on(ws, WORKER[1]):  # once the worker has finished a run, the next one it trains is the victim
            victims = {p: e for p, e in _training_in(WORKER[0]).items() if e > 1}
        time.sleep(0.5)
    assert victims, "the worker node never finished a run and started another"
    time.sleep(2)
    for pid in sh("ip", "netns", "pids", WORKER[0]).stdout.split():  # the worker node dies mid-run
        sh("kill", "-9", pid, check=False)
    output, _ = study.communicate(timeout=900)
    assert study.returncode == 0, output[-3000:]
    experiments = consistent_record(ws)
    assert len(experiments) >= 6 and all(e.status in ("keep", "discard") for e in experiments), output[-2000:]
    ledger = ledger_for(ws)
    slots = {e.id: [r["metrics"].get("slot", "") for r in ledger.runs(e.id)] for e in experiments}
    ledger.close()
    killed = next(iter(victims.values()))
    assert all(HEAD[1] in slot for slot in slots[killed]), slots  # run again on the head, to its end
    assert any(WORKER[1] in slot for runs in slots.values() for slot in runs), slots  # the worker did run some
    assert (two_nodes["worker_cache"] / "data").is_dir()  # and prepared the data it lacked first
