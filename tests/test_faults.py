"""A dead judge stops the run: a reward worker's fault reaches the medix trainer's guard around
verl's replay buffer (verl 0.9.1 would otherwise drop the failed groups, or refill them forever)."""

import pytest


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", namespace="medix-faults-test")
    yield ray
    ray.shutdown()


def test_a_reported_fault_stops_sampling_and_refill(ray_local):
    from medix_verl.integration.faults import first_fault, open_fault_box, report_fault
    from medix_verl.integration.trainer import stop_on_reward_fault

    calls = []
    sample = stop_on_reward_fault(lambda *a: calls.append(a) or "batch")
    report_fault("ignored: no trainer opened a box yet")
    assert first_fault() is None and sample(1, "train", 4) == "batch"
    box = open_fault_box()

    @ray_local.remote
    def reward_worker():  # another process, as verl's reward loop workers are
        report_fault("ServerUnavailableError: judge unreachable at http://judge:8085/v1")

    ray_local.get(reward_worker.remote())
    assert first_fault().startswith("ServerUnavailableError: judge unreachable")
    with pytest.raises(RuntimeError, match="the reward stopped: ServerUnavailableError: judge unreachable"):
        sample(2, "train", 4)
    assert len(calls) == 1  # the batch after the fault was never handed to the trainer
    assert stop_on_reward_fault(sample) is sample  # guarded once
    del box


def test_judge_replica_counts_reach_the_trainer_from_reward_workers(ray_local):
    """A reward worker's judge client (a pool of two) publishes its per-replica counts; the
    trainer, which opened the box before, reads every worker's and logs judge/replica/<i>/..."""
    import gc

    from medix_verl.integration.faults import judge_stats, open_fault_box
    from medix_verl.integration.metrics import replica_metrics

    open_fault_box()  # as the trainer does; the box must outlive the call that opened it
    gc.collect()

    @ray_local.remote
    def reward_worker(n):
        import asyncio

        from medix_verl.clients.chat import ChatClient
        from medix_verl.devkit.fake_judge import FakeJudge
        from medix_verl.integration.faults import publish_judge_stats

        with FakeJudge() as a, FakeJudge() as b:
            client = ChatClient(f"{a.url},{b.url}", "m")

            async def go():
                for i in range(n):
                    await client.complete([{"role": "user", "content": f"Predicted:{i}\nGround Truth:{i}"}])
                await client.aclose()

            asyncio.run(go())
            publish_judge_stats(client, force=True)
        return n

    assert ray_local.get([reward_worker.remote(6), reward_worker.remote(4)]) == [6, 4]
    import time

    deadline = time.time() + 10
    while len(judge_stats()) < 2 and time.time() < deadline:  # the updates are sent without waiting
        time.sleep(0.1)
    stats = judge_stats()
    assert len(stats) == 2
    metrics, _ = replica_metrics(stats)
    assert metrics["judge/replica/0/requests"] + metrics["judge/replica/1/requests"] == 10
    assert metrics["judge/replica/0/requests"] > 0 and metrics["judge/replica/1/requests"] > 0
