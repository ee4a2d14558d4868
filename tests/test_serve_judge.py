"""``recipes/serve_judge.sh``: the judge server the recipes call (JUDGE=server), one replica or
several on one node, on loopback unless given a key, with the layout passed on to vLLM (a stand-in
``vllm`` on PATH prints or holds what it was started with)."""

import pytest

pytestmark = pytest.mark.slow  # each starts the script in a subprocess


def test_serve_judge_binds_loopback_and_wants_a_key_beyond_it():
    import os
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "recipes" / "serve_judge.sh"
    env = {k: v for k, v in os.environ.items() if k != "MEDIX_JUDGE_API_KEY"}
    env["PATH"] = "/usr/bin:/bin"  # no vllm here: the script stops at that check when it gets there
    exposed = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, env={**env, "JUDGE_HOST": "0.0.0.0"}
    )
    assert exposed.returncode == 2 and "set MEDIX_JUDGE_API_KEY" in exposed.stderr
    local = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env)
    assert local.returncode == 2 and "vllm is not installed" in local.stderr  # loopback needs no key
    keyed = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True,
        env={**env, "JUDGE_HOST": "0.0.0.0", "MEDIX_JUDGE_API_KEY": "k"},
    )  # fmt: skip
    assert keyed.returncode == 2 and "vllm is not installed" in keyed.stderr


def test_serve_judge_passes_the_layout_to_vllm(tmp_path):
    """The 4 + 4 layout's judge: two tensor-parallel-2 copies (JUDGE_DP=2) on loopback."""
    import os
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "recipes" / "serve_judge.sh"
    fake = tmp_path / "vllm"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "MEDIX_JUDGE_API_KEY"}
    env.update(PATH=f"{tmp_path}:/usr/bin:/bin", JUDGE_DP="2")
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env)
    args = proc.stdout.split()
    assert proc.returncode == 0 and args[:2] == ["serve", "Qwen/Qwen3-4B-Instruct-2507"]
    pairs = dict(zip(args[2::2], args[3::2]))
    assert pairs["--tensor-parallel-size"] == "2" and pairs["--data-parallel-size"] == "2"
    assert pairs["--host"] == "127.0.0.1" and pairs["--max-model-len"] == "2048"


def test_serve_judge_starts_replicas_on_their_own_gpus_and_prints_the_url_list(tmp_path):
    """A judge node: ``--replicas 2`` with TP 2 over GPUs 4-7: two servers, GPUs 4,5 and 6,7, ports
    8085 and 8086; the comma list to give the trainers on stdout; SIGTERM stops both."""
    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "recipes" / "serve_judge.sh"
    fake = tmp_path / "vllm"
    fake.write_text(
        '#!/bin/bash\nport=""; prev=""; for a in "$@"; do [ "$prev" = --port ] && port=$a; prev=$a; done\n'
        f'echo "$CUDA_VISIBLE_DEVICES $*" > {tmp_path}/replica_$port\nexec sleep 60\n'
    )
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "MEDIX_JUDGE_API_KEY"}
    env.update(PATH=f"{tmp_path}:/usr/bin:/bin", CUDA_VISIBLE_DEVICES="4,5,6,7", JUDGE_LOG_DIR=str(tmp_path))
    proc = subprocess.Popen(
        ["bash", str(script), "--replicas", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        line = proc.stdout.readline().strip()
        assert line == "JUDGE_URL=http://127.0.0.1:8085/v1,http://127.0.0.1:8086/v1"
        deadline = time.time() + 10
        while not all((tmp_path / f"replica_{p}").exists() for p in (8085, 8086)):
            assert time.time() < deadline
            time.sleep(0.1)
        first = (tmp_path / "replica_8085").read_text().split()
        second = (tmp_path / "replica_8086").read_text().split()
        assert first[0] == "4,5" and second[0] == "6,7"
        assert "--tensor-parallel-size" in first and first[first.index("--tensor-parallel-size") + 1] == "2"
        from medix_verl.clients.pool import parse_url_list

        assert len(parse_url_list(line.split("=", 1)[1])) == 2  # what the reward takes
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 143
    left = subprocess.run(["pgrep", "-f", "sleep 60"], capture_output=True, text=True).stdout.split()
    stubs = [pid for pid in left if str(tmp_path) in open(f"/proc/{pid}/environ", errors="replace").read()]
    assert not stubs, "the replicas outlived the script"
    too_many = subprocess.run(
        ["bash", str(script), "--replicas", "3"], capture_output=True, text=True, env=env, timeout=10
    )
    assert too_many.returncode == 2 and "need 6 GPUs, CUDA_VISIBLE_DEVICES has 4" in too_many.stderr
    bad = subprocess.run(["bash", str(script), "--replicas", "x"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "--replicas must be a number" in bad.stderr
