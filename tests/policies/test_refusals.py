"""Bad input to the policy commands: each a clear error naming the problem and the fix.

Policy folders (``meta.json``), ``evaluate --device``, ``train-policy --env``, outputs that
exist or cannot be written, and interrupted training (checkpoints on wall time, stale
temporaries, Ctrl-C).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

import robopref.policies.evaluate_command
from robopref.cli import main
from robopref.demo import SHIPPED
from robopref.policies import callbacks
from robopref.policies.checkpoint import load_policy, read_meta
from robopref.policies.latent_env import LatentRewardEnv, LatentSource
from robopref.policies.train import TrainPolicyOptions, train_policy
from robopref.reward import load_reward_model

ENV_ID = "robopref/PlatePlacement-v0"


def _policy_folder(tmp_path: Path, **changes: Any) -> Path:
    """A copy of the shipped oracle policy whose meta.json has ``changes`` (None: removed)."""
    folder = tmp_path / "policy"
    shutil.copytree(SHIPPED / "policy_oracle", folder)
    meta = json.loads((folder / "meta.json").read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def _error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run the CLI, check it failed with status 2 and no traceback; its error message."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# ---------------------------------------------------------------- policy folders


def test_meta_not_json_names_the_file_and_the_fix(tmp_path: Path) -> None:
    folder = _policy_folder(tmp_path)
    (folder / "meta.json").write_text('{"format": "robopref-policy", ')
    with pytest.raises(ValueError, match=r"meta.json is not valid JSON .*train-policy --out"):
        read_meta(folder)


def test_meta_of_the_wrong_shape(tmp_path: Path) -> None:
    folder = _policy_folder(tmp_path)
    (folder / "meta.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="meta.json holds a JSON list, not the object"):
        read_meta(folder)
    folder = _policy_folder(tmp_path / "b", algo=None, env_id=None)
    with pytest.raises(ValueError, match=r"meta.json lacks the field\(s\) algo, env_id: retrain"):
        read_meta(folder)
    folder = _policy_folder(tmp_path / "c", kind="latent", reward_path=None)
    with pytest.raises(ValueError, match="lacks the field.*reward_path"):
        read_meta(folder)
    folder = _policy_folder(tmp_path / "d", latent_dim="four")
    with pytest.raises(ValueError, match="latent_dim.*not a size"):
        read_meta(folder)


def test_meta_unknown_algorithm_and_kind_list_the_known_values(tmp_path: Path) -> None:
    folder = _policy_folder(tmp_path / "a", algo="td3")
    with pytest.raises(
        ValueError, match="unknown algorithm 'td3': set \"algo\" to one of ppo, sac"
    ):
        load_policy(folder)
    folder = _policy_folder(tmp_path / "b", kind="expert")
    with pytest.raises(ValueError, match="unknown kind 'expert'.* one of latent, oracle"):
        load_policy(folder)


def test_damaged_model_zip(tmp_path: Path) -> None:
    folder = _policy_folder(tmp_path)
    (folder / "model.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="model.zip is not a readable ppo model"):
        load_policy(folder)


def test_bad_meta_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = _policy_folder(tmp_path, algo="td3")
    err = _error(["evaluate", "--policy", str(folder), "--json", str(tmp_path / "e.json")], capsys)
    assert f"{folder / 'meta.json'} names the unknown algorithm 'td3'" in err
    (folder / "meta.json").write_text("not json")
    err = _error(["video", "--policy", str(folder), "--out", str(tmp_path / "v.mp4")], capsys)
    assert "meta.json is not valid JSON" in err and "robopref train-policy --out" in err


# ---------------------------------------------------------------- evaluate --device


def test_evaluate_cuda_without_cuda(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["evaluate", "--policy", str(SHIPPED / "policy_oracle"), "--json"]
    err = _error([*argv, str(tmp_path / "e.json"), "--device", "cuda"], capsys)
    assert "torch sees no CUDA GPU here: use --device cpu or --device auto" in err
    err = _error([*argv, str(tmp_path / "e.json"), "--device", "tpu"], capsys)
    assert "device='tpu' is not one of auto, cpu, cuda" in err
    assert not (tmp_path / "e.json").exists()


def test_evaluate_loads_on_the_device_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    seen: list[str] = []

    class StopError(Exception):
        pass

    def spy(*args: Any, device: str = "cpu", **kwargs: Any) -> None:
        seen.append(str(device))
        raise StopError

    monkeypatch.setattr(robopref.policies.evaluate_command, "load_reward_model", spy)
    monkeypatch.setattr(robopref.policies.evaluate_command, "load_policy", spy)
    for folder in ("policy_vpl", "policy_oracle"):
        options = robopref.policies.evaluate_command.EvaluateOptions(
            policy=[str(SHIPPED / folder)], reward=str(SHIPPED / "vpl.pt"), device="cuda"
        )
        with pytest.raises(StopError):
            robopref.policies.evaluate_command.evaluate(options)
    assert seen == ["cuda", "cuda"]  # the reward model, then the oracle policy


# ---------------------------------------------------------------- train-policy --env, --out


def _train_argv(reward: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train-policy", "--reward", str(reward), "--data", str(data), "--out", str(out),
        "--steps", "128", "--n-envs", "2", "--eval-every", "0", "--eval-episodes", "1",
        "--progress", "false", "--device", "cpu", *extra,
    ]  # fmt: skip


def test_train_policy_env_must_be_the_reward_models_task(
    tiny_vpl: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "p"
    argv = _train_argv(tiny_vpl, tiny_data, out, "--env", "robopref/BlockSort-v0")
    err = _error(argv, capsys)
    assert (
        f"--env robopref/BlockSort-v0 is not the task of the reward model {tiny_vpl} "
        f"({ENV_ID})" in err
    )
    assert f"Omit --env, pass --env {ENV_ID}" in err
    assert not out.exists()


def test_train_policy_out_that_cannot_be_written(
    tiny_vpl: Path,
    tiny_data: Path,
    tmp_path: Path,
    read_only_folder: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    err = _error(_train_argv(tiny_vpl, tiny_data, blocker / "p"), capsys)
    assert f"{blocker} is a file, so no folder can be made inside it" in err
    err = _error(_train_argv(tiny_vpl, tiny_data, read_only_folder / "p"), capsys)
    assert f"the folder {read_only_folder} is not writable by this user" in err


def test_train_policy_refuses_to_replace_a_policy(
    tiny_vpl: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "p"
    assert main(_train_argv(tiny_vpl, tiny_data, out)) == 0
    capsys.readouterr()
    finished = (out / "model.zip").read_bytes()
    err = _error(_train_argv(tiny_vpl, tiny_data, out), capsys)
    assert f"--out {out} already holds a finished policy: pass --overwrite" in err
    assert (out / "model.zip").read_bytes() == finished
    (out / "model.zip").unlink()
    (out / "checkpoint.json").unlink(missing_ok=True)
    (out / "checkpoint.zip").write_bytes(b"")  # killed between the zip and its JSON
    err = _error(_train_argv(tiny_vpl, tiny_data, out), capsys)
    assert "holds an unfinished run's checkpoint: pass --overwrite to start over" in err
    (out / "checkpoint.json").write_text("{}")  # an unfinished, resumable run
    err = _error(_train_argv(tiny_vpl, tiny_data, out), capsys)
    assert "holds an unfinished run's checkpoint: pass --resume" in err
    err = _error([*_train_argv(tiny_vpl, tiny_data, out), "--resume", "--overwrite"], capsys)
    assert "pass one of them" in err
    assert main(_train_argv(tiny_vpl, tiny_data, out, "--overwrite")) == 0
    assert not (out / "checkpoint.zip").exists()  # the replaced run's state is gone
    assert read_meta(out)["steps"] >= 128


def test_resume_with_a_damaged_checkpoint_json(
    tiny_vpl: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "p"
    out.mkdir()
    (out / "checkpoint.zip").write_bytes(b"")
    (out / "checkpoint.json").write_text("[]")
    err = _error(_train_argv(tiny_vpl, tiny_data, out, "--resume"), capsys)
    assert "checkpoint.json holds a JSON list" in err and "without --resume" in err
    err = _error(_train_argv(tiny_vpl, tiny_data, tmp_path / "q", "--resume"), capsys)
    assert "nothing to resume in" in err


def test_evaluate_and_video_refuse_existing_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    report = tmp_path / "e.json"
    report.with_suffix(".png").write_bytes(b"")
    argv = ["evaluate", "--policy", str(SHIPPED / "policy_oracle"), "--json", str(report)]
    err = _error(argv, capsys)
    assert f"--json {report}: the evaluation report already exists; pass --overwrite" in err
    err = _error(["evaluate", "--json", str(report.with_suffix(".png") / "e.json")], capsys)
    assert "is a file, so no folder can be made inside it" in err
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    err = _error(["video", "--policy", str(tmp_path / "none"), "--out", str(video)], capsys)
    assert f"--out {video}: the video already exists; pass --overwrite" in err
    assert video.read_bytes() == b""


# ---------------------------------------------------------------- interruption


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Count(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _on_step(self) -> bool:
        self.calls += 1
        return True


def test_every_n_minutes_triggers_on_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeClock()
    monkeypatch.setattr(callbacks.time, "monotonic", clock)
    child = _Count()
    child.model = SimpleNamespace(num_timesteps=0)  # type: ignore[assignment]
    trigger = callbacks.EveryNMinutes(1.0, child)
    trigger._on_training_start = lambda: None  # no model: only the clock matters here
    for now in (10.0, 59.0, 60.0, 61.0, 119.0, 121.0):
        clock.now = now
        trigger._on_step()
    assert child.calls == 2  # at 60 s and at 121 s
    never = callbacks.EveryNMinutes(0.0, child)
    clock.now = 1e9
    never._on_step()
    assert child.calls == 2


def test_checkpoint_on_wall_time_and_stale_temps_cleaned(
    tiny_vpl: Path, tiny_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "p"
    out.mkdir()
    stale = [out / ".checkpoint.zip.k1ll3d00.tmp.zip", out / ".model.zip.x9x9x9x9.tmp.zip"]
    for path in stale:
        path.write_bytes(b"half")
    options = TrainPolicyOptions(
        reward=str(tiny_vpl), data=str(tiny_data), out=str(out), steps=256, n_envs=2,
        eval_every=0, eval_episodes=1, progress=False, device="cpu",
        checkpoint_every=0, checkpoint_minutes=1e-9,  # steps off; wall time: every step
    )  # fmt: skip
    train_policy(options)
    saved = json.loads((out / "checkpoint.json").read_text())
    assert 0 < saved["steps"] <= 512  # one PPO rollout: 256 steps x 2 envs
    assert not any(path.exists() for path in stale)
    assert not list(out.glob(".*.tmp*")), "a temporary was left behind"


def test_interrupted_training_saves_a_checkpoint_and_resumes(
    tiny_vpl: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "p"
    common = dict(
        reward=str(tiny_vpl), data=str(tiny_data), out=str(out), steps=1024, n_envs=2,
        eval_every=0, eval_episodes=1, progress=False, device="cpu",
        checkpoint_every=0, checkpoint_minutes=0,
    )  # fmt: skip
    original = callbacks.ProgressBar._on_step

    def interrupt(self: callbacks.ProgressBar) -> bool:
        if self.model.num_timesteps >= 600:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(callbacks.ProgressBar, "_on_step", interrupt)
    with pytest.raises(RuntimeError, match="interrupted at step 600; saved .*--resume"):
        train_policy(TrainPolicyOptions(**common))
    assert json.loads((out / "checkpoint.json").read_text())["steps"] == 600
    assert not (out / "model.zip").exists()
    monkeypatch.setattr(callbacks.ProgressBar, "_on_step", original)
    meta = train_policy(TrainPolicyOptions(resume=True, **common))
    assert meta["steps"] >= 1024


# ---------------------------------------------------------------- the reward model stays put


def test_latent_env_neither_moves_nor_copies_the_model(tiny_vpl: Path) -> None:
    model = load_reward_model(tiny_vpl)

    def moved(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("LatentRewardEnv moved the caller's reward model")

    model.cpu = moved  # type: ignore[method-assign]
    model.to = moved  # type: ignore[method-assign]
    env = LatentRewardEnv(gym.make(ENV_ID), model, LatentSource.prior(model.latent_dim))
    assert env.reward_model is model
    env.reset(seed=0)
    _, reward, *_ = env.step(env.action_space.sample() * 0)
    assert 0.0 <= reward <= 1.0


# ---------------------------------------------------------------- evaluate and video: one helper


def test_personalize_new_user_is_the_one_contract(tiny_vpl: Path, tmp_path: Path) -> None:
    from robopref.policies.checkpoint import LoadedPolicy
    from robopref.policies.personalize import new_user_pool, new_users, personalize_new_user
    from robopref.users.population import resolve_population

    reward = load_reward_model(tiny_vpl)
    vpl = LoadedPolicy(None, {"kind": "latent", "latent_dim": reward.latent_dim}, tmp_path)
    oracle = LoadedPolicy(None, {"kind": "oracle", "latent_dim": 0}, tmp_path)
    population = resolve_population("two-modes", gym.make(ENV_ID).unwrapped)
    users = new_users(population, 2, seed=5)
    pool = new_user_pool(reward, 5, pairs=64, episodes=6)
    z = [personalize_new_user(vpl, reward, u, i, pool, 2, "active", 5) for i, u in enumerate(users)]
    again = personalize_new_user(vpl, reward, users[0], 0, pool, 2, "active", 5)
    assert z[0] is not None and z[1] is not None and z[0].shape == (reward.latent_dim,)
    assert again is not None and (again == z[0]).all()  # the seeds follow from (seed, user)
    assert not (z[0] == z[1]).all()
    assert personalize_new_user(oracle, None, users[0], 0, None, 2, "active", 5) is None


def test_train_policy_held_out_check_is_what_evaluate_measures(
    tiny_vpl: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """The last held-out row of train-policy equals evaluate --users N --episodes 1 --seed S."""
    out = tmp_path / "p"
    options = TrainPolicyOptions(
        reward=str(tiny_vpl), data=str(tiny_data), out=str(out), steps=256, n_envs=2,
        eval_every=0, eval_episodes=3, progress=False, device="cpu", seed=4,
    )  # fmt: skip
    meta = train_policy(options)
    result = robopref.policies.evaluate_command.evaluate(
        robopref.policies.evaluate_command.EvaluateOptions(
            policy=[str(out)], reward=str(tiny_vpl), users=3, episodes=1, seed=4,
            json=str(tmp_path / "e.json"),
        )
    )  # fmt: skip
    row = next(r for r in result["results"] if r["group"] == "all")
    assert meta["history"][-1]["success"] == row["success"]
    assert meta["history"][-1]["true_return"] == pytest.approx(row["return"])
