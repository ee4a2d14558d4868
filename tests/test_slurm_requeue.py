"""recipes/slurm_medix_r1.sbatch near a time limit, with SLURM's commands stood in for by small
scripts on PATH (srun runs its command here; scontrol records what it is asked): SLURM's USR1
before the limit makes the script ask the trainer to stop after its step (CKPT_DIR/STOP_REQUESTED),
wait for it, and requeue the job; a run that ends by itself is not requeued."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SRUN = """#!/usr/bin/env bash
# stand-in for srun: drop srun's options, answer `hostname -I`, block for the Ray daemons, run the
# recipe directly for `ray_cluster.sh run RECIPE`
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do
  case "$1" in -w|--nodes|--ntasks) shift 2 ;; *) shift ;; esac
done
if [ "$1" = hostname ]; then echo 127.0.0.1; exit 0; fi
if [ "$1" = bash ] && [ "$3" = head ] || [ "$3" = worker ]; then exec sleep 600; fi
if [ "$1" = bash ] && [ "$3" = run ]; then shift 3; exec bash "$@"; fi
echo "srun stand-in: unexpected $*" >&2; exit 9
"""

SCONTROL = """#!/usr/bin/env bash
if [ "$1 $2" = "show hostnames" ]; then printf 'node1\\nnode2\\n'; exit 0; fi
echo "$*" >> "$SCONTROL_LOG"
"""

# a recipe standing in for training: a step every 0.2 s; on STOP_REQUESTED it "saves", removes
# the request and exits 0, as the medix trainer does
RECIPE = """#!/usr/bin/env bash
echo "recipe started with EXPERIMENT=$EXPERIMENT CKPT_DIR=$CKPT_DIR"
for step in $(seq 1 ${STEPS:-100}); do
  sleep 0.2
  echo "step $step" >> "$CKPT_DIR/steps.log"
  if [ -e "$CKPT_DIR/STOP_REQUESTED" ]; then
    rm "$CKPT_DIR/STOP_REQUESTED"; echo "saved at $step" > "$CKPT_DIR/saved"; exit 0
  fi
done
"""


@pytest.fixture
def slurm(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    recipe = tmp_path / "fake_recipe.sh"
    recipe.write_text(RECIPE)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        SLURM_SUBMIT_DIR=str(tmp_path),
        SLURM_JOB_ID="4242",
        SLURM_JOB_NODELIST="node[1-2]",
        SLURM_JOB_NUM_NODES="2",
        RAY_AUTH_TOKEN="test-token",
        CKPT_DIR=str(ckpt),
        SCONTROL_LOG=str(tmp_path / "scontrol.log"),
    )
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    return tmp_path, recipe, ckpt, env


def _start(tmp_path, recipe, env):
    # output to a file: the Ray daemons' stand-ins outlive the script and would hold a pipe open
    proc = subprocess.Popen(
        ["bash", str(ROOT / "recipes" / "slurm_medix_r1.sbatch"), str(recipe)],
        cwd=tmp_path,
        env=dict(env, RAY_HEAD_WAIT_S="0"),
        stdout=open(tmp_path / "job.out", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc.out = tmp_path / "job.out"
    return proc


def _finish(proc):
    try:
        proc.wait(timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the stand-ins left in the job's session
    return proc.out.read_text()


def test_time_limit_signal_stops_after_the_step_and_requeues(slurm):
    tmp_path, recipe, ckpt, env = slurm
    (ckpt / "STOP_REQUESTED").write_text("")  # left over from a killed job: removed at start
    proc = _start(tmp_path, recipe, env)
    deadline = time.time() + 30
    while not (ckpt / "steps.log").exists() or len((ckpt / "steps.log").read_text().splitlines()) < 3:
        assert time.time() < deadline and proc.poll() is None, _finish(proc)
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGUSR1)  # what --signal=B:USR1@900 sends to the batch script
    out = _finish(proc)
    assert proc.returncode == 0, out
    assert "time limit near" in out and "requeueing job 4242" in out
    assert (ckpt / "saved").exists() and not (ckpt / "STOP_REQUESTED").exists()
    steps = len((ckpt / "steps.log").read_text().splitlines())
    assert steps < 100  # stopped early, after the step in progress
    assert (tmp_path / "scontrol.log").read_text().split("\n")[0] == "requeue 4242"


def test_a_run_that_ends_by_itself_is_not_requeued(slurm):
    tmp_path, recipe, ckpt, env = slurm
    proc = _start(tmp_path, recipe, dict(env, STEPS="3"))
    out = _finish(proc)
    assert proc.returncode == 0, out
    assert "recipe started" in out and "requeue" not in out
    assert not (tmp_path / "scontrol.log").exists()
    assert f"checkpoints and resume: {ckpt}" in out
