"""train-reward and eval-reward refuse bad inputs before they touch anything; Ctrl-C resumes."""

from __future__ import annotations

import math

import pytest
import torch

from robopref.cli import main
from robopref.reward.checkpoint import load_payload
from robopref.reward.train_command import split_three_ways
from robopref.reward.training import TrainSettings
from robopref.reward.vpl import VPLConfig
from tests.support.toy import toy_dataset

SMALL = ["--epochs", "3", "--hidden", "8", "--features", "4", "--device", "cpu"]


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "toy.npz"
    toy_dataset(n_users=20, pairs_per_user=6, segment_length=2, seed=4).save(path)
    return path


def train_args(data, out, *extra: str) -> list[str]:
    return ["train-reward", "--data", str(data), "--out", str(out), *SMALL, *extra]


def test_a_failing_overwrite_keeps_the_previous_runs_resume_state(toy_file, tmp_path, capsys):
    out = tmp_path / "ow.pt"
    state = tmp_path / "ow.pt.resume"
    assert main(train_args(toy_file, out)) == 0
    before = state.read_bytes()
    png = tmp_path / "image.npz"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    bad_runs = {
        "not a robopref preference dataset": train_args(png, out, "--overwrite"),
        "--test-fraction 0.99": train_args(toy_file, out, "--overwrite", "--test-fraction", "0.99"),
        "kl_weight=-1.0": train_args(toy_file, out, "--overwrite", "--kl-weight", "-1"),
        "--val-fraction 1.5": train_args(toy_file, out, "--overwrite", "--val-fraction", "1.5"),
        "decoder='nonsense'": train_args(toy_file, out, "--overwrite", "--decoder", "nonsense"),
    }
    for words, argv in bad_runs.items():
        capsys.readouterr()
        assert main(argv) == 2, words
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err
        assert state.read_bytes() == before, f"{words}: the old run's state was touched"
    assert main(train_args(toy_file, out, "--resume", "--epochs", "4")) == 0


@pytest.mark.parametrize("name", ["kl_weight", "free_nats"])
@pytest.mark.parametrize("value", [math.nan, -1.0, math.inf])
def test_vpl_config_refuses_nan_negative_and_infinite_kl_settings(name, value):
    with pytest.raises(ValueError, match=f"{name}=.*finite number >= 0"):
        VPLConfig(**{name: value})


@pytest.mark.parametrize(
    "bad",
    [
        {"lr": math.nan},
        {"lr": math.inf},
        {"weight_decay": math.nan},
        {"grad_clip": math.nan},
        {"val_fraction": math.nan},
        {"val_fraction": 1.0},
        {"kl_delay": -1},
    ],
)
def test_train_settings_refuse_nan_and_out_of_range_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrainSettings(**bad)


def test_split_fractions_name_their_option_and_range():
    data = toy_dataset(n_users=20, pairs_per_user=2, seed=0)
    with pytest.raises(ValueError, match=r"--val-fraction nan .*between 0 and 1") as caught:
        split_three_ways(data, 0.2, math.nan, 0)
    assert "test_fraction" not in str(caught.value)
    with pytest.raises(ValueError, match=r"--test-fraction 0\.99 holds out 20 of .* 20 users"):
        split_three_ways(data, 0.99, 0.1, 0)
    with pytest.raises(ValueError, match=r"--test-fraction 1\.0 .*between 0 and 1"):
        split_three_ways(data, 1.0, 0.1, 0)
    with pytest.raises(ValueError, match=r"--val-fraction 0\.99 .*none to train on"):
        split_three_ways(data, 0.2, 0.99, 0)
    train, val, test = split_three_ways(data, 0.2, 0.1, 0)
    assert (train.n_users, val.n_users, len(test)) == (14, 2, 4)


def test_ctrl_c_ends_with_the_resume_hint_and_resume_gives_the_uninterrupted_result(
    toy_file, tmp_path, capsys, monkeypatch
):
    import robopref.reward.training as training

    whole = tmp_path / "whole.pt"
    assert main(train_args(toy_file, whole, "--epochs", "7")) == 0
    real_validate, calls = training._validate, []

    def interrupted_in_the_third_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(training, "_validate", interrupted_in_the_third_epoch)
    out = tmp_path / "int.pt"
    capsys.readouterr()
    assert main(train_args(toy_file, out, "--epochs", "7")) == 130
    err = capsys.readouterr().err
    assert "continue with the same command and --resume" in err and "Traceback" not in err
    assert "interrupted in epoch 3" in err
    # interrupted before the first periodic save (every 5 epochs): the state of epoch 0
    assert load_payload(out.with_name("int.pt.resume"), resume_state=True)["epoch"] == 0
    monkeypatch.setattr(training, "_validate", real_validate)
    assert main(train_args(toy_file, out, "--epochs", "7")) == 2  # without --resume: refused
    assert "--resume" in capsys.readouterr().err
    assert main(train_args(toy_file, out, "--epochs", "7", "--resume")) == 0
    resumed, uninterrupted = load_payload(out), load_payload(whole)
    assert resumed["best"] == uninterrupted["best"]
    for key, value in uninterrupted["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key


def test_eval_reward_refuses_a_resume_state_naming_the_checkpoint(toy_file, tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(train_args(toy_file, out)) == 0
    state = tmp_path / "m.pt.resume"
    capsys.readouterr()
    argv = ["eval-reward", "--model", str(state), "--data", str(toy_file), "--queries", "0,1"]
    assert main([*argv, "--json", str(tmp_path / "e.json")]) == 2
    err = capsys.readouterr().err
    assert "resumable state" in err and "not the best" in err and f"checkpoint {out} " in err
    assert not (tmp_path / "e.json").exists()


def test_tb_writes_each_epochs_curves_beside_out(toy_file, tmp_path, capsys):
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:  # pragma: no cover - the dev extra installs it
        pytest.skip("SKIPPED LOUDLY: tensorboard is not installed (pip install 'robopref[tb]')")
    out = tmp_path / "runs" / "vpl.pt"
    assert main(train_args(toy_file, out, "--tb")) == 0
    folder = tmp_path / "runs" / "tb" / "vpl"
    events = list(folder.glob("events.out.tfevents.*"))
    assert events, f"no event file in {folder}"
    assert str(folder) in capsys.readouterr().out
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert {"train/loss", "train/kl", "val/nll", "val/accuracy"} <= tags
    assert [e.step for e in accumulator.Scalars("val/nll")] == [1, 2, 3]
    # --overwrite replaces the old curves rather than drawing two runs on one plot
    assert main(train_args(toy_file, out, "--tb", "--overwrite", "--epochs", "2")) == 0
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    assert [e.step for e in accumulator.Scalars("val/nll")] == [1, 2]
