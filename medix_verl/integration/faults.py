"""Reward faults that must stop a run, carried from verl's reward workers to its driver.

verl 0.9.1's v1 agent loop turns an exception in a reward into a failed prompt group: the sync
trainer trains on the groups that are left, and DAPO's refill replaces each failed group with a
new prompt, which against a judge that is down
(:class:`~medix_verl.clients.chat.ServerUnavailableError`) fails again, forever. So the ``medix``
trainer opens a fault box when it starts (:func:`open_fault_box`), the reward reports such a fault
into it before raising (:func:`report_fault`), and the trainer checks it around every sampling and
refill (:func:`first_fault`) and stops the run with the reward's message. Both reward entry points
score through :func:`reporting_faults`.

The box is a named Ray actor owned by the trainer (it lives as long as the run), named after the
Ray job so that runs sharing a cluster do not see each other's faults. Outside Ray, or with
another trainer, reports go nowhere and :func:`first_fault` says ``None``.

A second box of the same kind carries the judge client's per-replica counts from every reward
worker to the trainer (:func:`publish_judge_stats`, at most twice a second per worker, without
waiting; :func:`judge_stats`), which logs them as ``judge/replica/<i>/...``.
"""

from __future__ import annotations

_MAX_KEPT = 20


class FaultBox:
    def __init__(self):
        self.faults: list[str] = []

    def report(self, message: str) -> None:
        if len(self.faults) < _MAX_KEPT:
            self.faults.append(message)

    def first(self) -> str | None:
        return self.faults[0] if self.faults else None


class StatsBox:
    """The latest per-replica judge counts of each reward worker."""

    def __init__(self):
        self.by_worker: dict[str, list[dict]] = {}

    def update(self, worker: str, replicas: list[dict]) -> None:
        self.by_worker[worker] = replicas

    def get(self) -> dict[str, list[dict]]:
        return self.by_worker


def _name(kind: str = "faults") -> str:
    import ray

    return f"medix_reward_{kind}_{ray.get_runtime_context().get_job_id()}"


#: the handles that created this job's boxes: Ray ends an actor when its creator's handles are
#: gone (a handle got by name does not keep it), so they are kept for the life of the process
_opened: dict[str, list] = {}


def open_fault_box():
    """Create this run's boxes (the trainer, once; again in the same job: the same boxes);
    returns the fault box's handle."""
    import ray

    job = _name()
    if job not in _opened:
        stats = ray.remote(StatsBox).options(name=_name("judge_stats"), get_if_exists=True, num_cpus=0).remote()
        faults = ray.remote(FaultBox).options(name=job, get_if_exists=True, num_cpus=0).remote()
        _opened[job] = [stats, faults]
    return _opened[job][1]


def _box(kind: str = "faults"):
    import ray

    if not ray.is_initialized():
        return None
    try:
        return ray.get_actor(_name(kind))
    except ValueError:  # no medix trainer in this run
        return None


_published = {"at": 0.0, "box": None, "looked_up": -1e9, "worker": None}


def publish_judge_stats(client, *, every_s: float = 0.5, force: bool = False) -> None:
    """Send ``client``'s per-replica counts to the trainer (no-op outside a medix run; at most
    every ``every_s`` seconds unless ``force``; never waits for the box). Reward workers can start
    before the trainer opens the box: until it is found, it is looked up again every 10 s."""
    import os
    import time

    now = time.monotonic()
    if client is None or (not force and now - _published["at"] < every_s):
        return
    _published["at"] = now
    if _published["box"] is None and now - _published["looked_up"] >= 10.0:
        _published["looked_up"] = now
        _published["box"] = _box("judge_stats")
        _published["worker"] = f"{os.uname().nodename}:{os.getpid()}"
    if _published["box"] is not None:
        _published["box"].update.remote(f"{_published['worker']}:{id(client)}", client.pool.summary(counts=True))


def judge_stats(timeout: float = 30.0) -> dict[str, list[dict]]:
    """Every reward worker's latest per-replica judge counts (empty outside a medix run)."""
    import ray

    box = _box("judge_stats")
    return {} if box is None else ray.get(box.get.remote(), timeout=timeout)


_reported = False  # this process has delivered a fault: the trainer needs only the first


def report_fault(message: str, timeout: float = 30.0) -> None:
    """Record a fault that must stop the run; delivered before this returns (no-op without a box,
    and after this process's first delivery: every later call of a dead judge fails the same way)."""
    global _reported
    import ray

    if _reported:
        return
    box = _box()
    if box is not None:
        ray.get(box.report.remote(message), timeout=timeout)
        _reported = True


async def reporting_faults(scoring):
    """Await ``scoring`` (a reward computation); a judge that is down is reported, then raised."""
    from ..clients.chat import ServerUnavailableError

    try:
        return await scoring
    except ServerUnavailableError as exc:
        report_fault(f"{type(exc).__name__}: {exc}")
        raise


def first_fault(timeout: float = 30.0) -> str | None:
    """The first fault reported in this run, or ``None``."""
    import ray

    box = _box()
    return None if box is None else ray.get(box.first.remote(), timeout=timeout)
