"""recipes/ray_cluster.sh on one node for real: a Ray head on this machine, `run` waiting for the
cluster and then starting a recipe (DRY_RUN) with RAY_ADDRESS and NNODES set."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(ROOT / "recipes" / "ray_cluster.sh")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args, env=None, timeout=180):
    full = dict(os.environ, PYTHON=sys.executable, **(env or {}))
    return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, timeout=timeout, env=full)


def test_usage_errors():
    assert _run().returncode == 2
    proc = _run("run", "recipes/no_such_recipe.sh")
    assert proc.returncode == 2 and "no such recipe" in proc.stderr


@pytest.mark.slow
def test_head_then_run_a_recipe_on_the_cluster():
    import tempfile

    port = str(_free_port())
    env = {"RAY_PORT": port, "GPUS_PER_NODE": "0"}
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    try:
        head = _run("head", "--temp-dir", temp, env=env)
        assert head.returncode == 0, head.stderr[-2000:]
        assert f":{port}" in head.stdout
        ip = head.stdout.strip().split()[-1]  # "... worker IP:PORT"
        # a cluster of 2 nodes never comes: run gives up with a message
        proc = _run(
            "run",
            str(ROOT / "recipes" / "medix_r1_qwen_7b.sh"),
            env={**env, "NNODES": "2", "WAIT_S": "3", "RAY_ADDRESS": ip},
        )
        assert proc.returncode != 0 and "1 of 2 nodes" in proc.stderr
        # one node is the whole cluster: the recipe starts, attached to it (DRY_RUN: composes, then
        # the preflight refuses this GPU-less head with a message, not a traceback)
        proc = _run(
            "run",
            str(ROOT / "recipes" / "medix_r1_qwen_7b.sh"),
            env={**env, "NNODES": "1", "DRY_RUN": "1", "RAY_ADDRESS": ip},
        )
        assert proc.returncode == 2 and "[no-training-gpus]" in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        assert "ray cluster ready: 1 nodes" in proc.stdout
        cfg = yaml.safe_load(proc.stdout[proc.stdout.index("\n") + 1 :])
        assert cfg["trainer"]["nnodes"] == 1 and cfg["trainer"]["n_gpus_per_node"] == 0
    finally:
        _run("stop", env=env)
        import shutil

        shutil.rmtree(temp, ignore_errors=True)
