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
    from medix_verl.verl.faults import first_fault, open_fault_box, report_fault
    from medix_verl.verl.trainer import stop_on_reward_fault

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
