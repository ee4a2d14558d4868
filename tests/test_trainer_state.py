"""The medix trainer's state across a preemption, on verl's real trainer class (the parts of verl
that write and read the model's shards are stood in for: they need a running cluster): its
cumulative counts go into each checkpoint and come back on resume; a stop request is honoured
after the step in progress with a checkpoint; a stale request left by a killed attempt is removed.
The whole path, with verl's own checkpoints, is the preemption test of the tiny CPU run."""

import json

import pytest
from omegaconf import OmegaConf

from medix_verl.integration.trainer import STATE_FILE, STOP_FILE, register


@pytest.fixture
def trainer_class(tmp_path, monkeypatch):
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    medix_trainer, _ = register()
    saved = []

    def verl_save(self):  # what verl's _save_checkpoint leaves: the step's folder and the tracker
        (tmp_path / f"global_step_{self.global_steps}" / "actor").mkdir(parents=True, exist_ok=True)
        (tmp_path / "latest_checkpointed_iteration.txt").write_text(str(self.global_steps))
        saved.append(self.global_steps)

    def verl_load(self):
        tracker = tmp_path / "latest_checkpointed_iteration.txt"
        self.global_steps = int(tracker.read_text()) if tracker.exists() else 0

    monkeypatch.setattr(PPOTrainerSync, "_save_checkpoint", verl_save)
    monkeypatch.setattr(PPOTrainerSync, "_load_checkpoint", verl_load)
    monkeypatch.setattr(PPOTrainerSync, "on_step_end", lambda self: None)
    config = OmegaConf.create(
        {"trainer": {"default_local_dir": str(tmp_path), "resume_mode": "auto", "v1": {"medix": {}}}}
    )

    def make():
        trainer = object.__new__(medix_trainer)
        trainer.config = config
        return trainer

    return make, saved


def test_cumulative_counts_are_saved_with_a_checkpoint_and_restored(trainer_class, tmp_path):
    make, saved = trainer_class
    first = make()
    first.global_steps = 3
    first._totals().update(samples=48, judge_errors=2, judge_error_masked=2, mean_band_filtered_groups=5)
    first._save_checkpoint()
    state = json.loads((tmp_path / "global_step_3" / STATE_FILE).read_text())
    assert state["step"] == 3 and state["totals"]["samples"] == 48 and saved == [3]

    resumed = make()  # a new process after a kill
    resumed._load_checkpoint()
    assert resumed.global_steps == 3
    assert resumed._totals()["samples"] == 48 and resumed._totals()["mean_band_filtered_groups"] == 5


def test_a_checkpoint_without_state_resumes_from_zero_counts_and_says_so(trainer_class, tmp_path, capsys):
    make, _ = trainer_class
    (tmp_path / "global_step_2").mkdir()
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("2")
    resumed = make()
    resumed._load_checkpoint()
    assert resumed.global_steps == 2 and resumed._totals()["samples"] == 0
    assert "has no medix_trainer_state.json" in capsys.readouterr().out


def test_a_stop_request_saves_after_the_step_and_ends_the_run(trainer_class, tmp_path):
    make, saved = trainer_class
    trainer = make()
    trainer._load_checkpoint()
    trainer.global_steps, trainer.total_training_steps = 4, 100
    trainer.on_step_end()  # no request: nothing happens
    assert saved == [] and trainer.total_training_steps == 100
    (tmp_path / STOP_FILE).touch()
    trainer.on_step_end()
    assert saved == [4] and (tmp_path / "global_step_4" / STATE_FILE).exists()
    assert trainer.total_training_steps == 4  # verl's loop ends after this step
    assert not (tmp_path / STOP_FILE).exists()
    # a step that verl saved already is not saved twice
    trainer.global_steps = 5
    trainer._save_checkpoint()
    (tmp_path / STOP_FILE).touch()
    trainer.on_step_end()
    assert saved == [4, 5]


def test_a_stop_request_left_by_a_killed_attempt_is_removed_at_start(trainer_class, tmp_path, capsys):
    make, _ = trainer_class
    (tmp_path / STOP_FILE).touch()
    make()._load_checkpoint()
    assert not (tmp_path / STOP_FILE).exists()
    assert "removed a stop request left from an earlier attempt" in capsys.readouterr().out


def test_the_hack_alarm_warns_then_stops_with_a_checkpoint_when_asked(trainer_class, tmp_path, capsys):
    """Under the release preset: two steps in a row with most credited answers flagged by the gates
    in shadow trip the alarm (a warning naming the gate and an example); with stop=true the run
    saves a checkpoint after the step and stops."""
    make, saved = trainer_class
    trainer = make()
    trainer.config = OmegaConf.create(
        {"trainer": {"default_local_dir": str(tmp_path), "resume_mode": "auto",
                     "v1": {"medix": {"hack_alarm": {"threshold": 0.2, "steps": 2, "stop": True}}}}}
    )  # fmt: skip
    infos = [
        {"shadow_credited": 1.0, "shadow_gate": "master_key", "shadow_answer": "Let me solve this step by step"},
        {"shadow_credited": 1.0, "shadow_gate": ""},
    ]
    trainer.global_steps = 1
    metrics = {"reward/shadow/flagged_credited": 0.5}
    trainer._watch_for_hacks(1, metrics, infos)
    assert metrics["reward/shadow/alarm"] == 0.0
    trainer.on_step_end()  # one step: no alarm yet
    trainer.global_steps = 2
    metrics = {"reward/shadow/flagged_credited": 0.5}
    with pytest.warns(RuntimeWarning, match="HACK ALARM at step 2"):
        trainer._watch_for_hacks(2, metrics, infos)
    assert metrics["reward/shadow/alarm"] == 1.0
    out = capsys.readouterr().out
    assert "master_key" in out and "'Let me solve this step by step'" in out
    with pytest.raises(RuntimeError, match=r"HACK ALARM.*checkpoint global_step_2 saved"):
        trainer.on_step_end()
    assert saved == [2] and (tmp_path / "global_step_2" / STATE_FILE).exists()


def test_the_hack_alarm_settings_are_checked():
    from medix_verl.integration.trainer import hack_alarm_settings

    cfg = OmegaConf.create({"trainer": {"v1": {"medix": {"hack_alarm": {"treshold": 0.1}}}}})
    with pytest.raises(ValueError, match=r"unknown keys \['treshold'\]"):
        hack_alarm_settings(cfg)
    cfg = OmegaConf.create({"trainer": {"v1": {"medix": {}}}})
    assert hack_alarm_settings(cfg) == {"threshold": 0.2, "steps": 3, "stop": False}
