"""Model selection from the answers alone (``--decoder auto``): robopref.reward.selection."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from robopref.cli import main
from robopref.reward.checkpoint import load_payload
from robopref.reward.selection import (
    CANDIDATES,
    held_back_split,
    select_vpl,
    worst_share_mean,
)
from robopref.reward.training import TrainSettings
from tests.support.toy import toy_dataset

SMALL_CONFIG = {"latent_dim": 2, "features": 8, "hidden": (32, 32)}


def fit(model, data, settings, warm):
    return model.fit(data, settings=settings, device="cpu", log=lambda _l: None, warm_start=warm)


@pytest.fixture(scope="module")
def two_clusters():
    return toy_dataset(n_users=100, pairs_per_user=32, segment_length=4, distractors=0, seed=0)


@pytest.fixture(scope="module")
def selected(two_clusters):
    return select_vpl(two_clusters, SMALL_CONFIG, TrainSettings(epochs=400, seed=0), fit)


def test_the_split_holds_back_a_quarter_of_each_users_answers(two_clusters):
    context, held = held_back_split(two_clusters, seed=0)
    assert len(np.intersect1d(context, held)) == 0
    assert len(context) + len(held) == two_clusters.n_pairs
    per_user = np.bincount(two_clusters.user[held], minlength=two_clusters.n_users)
    assert (per_user == 8).all()


def test_the_worst_fifth_is_the_mean_of_the_lowest_values():
    assert worst_share_mean(np.arange(10.0)) == pytest.approx(0.5)
    assert worst_share_mean(np.array([3.0])) == 3.0


def test_two_clusters_get_a_decoder_that_serves_groups(selected):
    """Two goal clusters: the cone's one moving peak fits them worst (measured on this toy:
    bilinear and mlp above ideal-distance)."""
    model, report = selected
    assert report.candidate in ("bilinear", "mlp"), report.table()
    assert model.config.decoder == report.candidate
    assert len(report.scores) == 2 * len(CANDIDATES)
    cone = [s for s in report.scores if s.candidate == "ideal-distance"]
    assert max(s.mean_loglik for s in cone) < max(s.mean_loglik for s in report.scores)


def test_the_choice_and_every_score_are_recorded_in_the_model(selected):
    model, report = selected
    record = model.meta["selection"]
    assert record["candidate"] == report.candidate and record["posterior"] == report.posterior
    assert len(record["scores"]) == len(report.scores)
    assert record["seconds"] >= sum(s["fit_seconds"] for s in record["scores"][::2]) > 0
    assert report.final_fit is not None and "final_fit" not in record


def test_the_scores_read_no_hidden_field(two_clusters, selected):
    """Goals, groups, noise-free labels and answer probabilities scrambled: the same scores."""
    rng = np.random.default_rng(0)
    scrambled = dataclasses.replace(
        two_clusters,
        user_goal=rng.normal(size=two_clusters.user_goal.shape),
        user_group=rng.permutation(two_clusters.user_group),
        true_label=rng.random(two_clusters.n_pairs).astype(np.float32),
        answer_prob=rng.random(two_clusters.n_pairs).astype(np.float32),
        contested=~two_clusters.contested,
    )
    _, again = select_vpl(scrambled, SMALL_CONFIG, TrainSettings(epochs=400, seed=0), fit)
    _, report = selected
    assert [s.mean_loglik for s in again.scores] == pytest.approx(
        [s.mean_loglik for s in report.scores]
    )


def test_train_reward_auto_records_the_choice_and_a_resume_keeps_it(tmp_path, capsys):
    data = tmp_path / "toy.npz"
    toy_dataset(n_users=24, pairs_per_user=8, segment_length=2, seed=4).save(data)
    out = tmp_path / "auto.pt"
    args = ["train-reward", "--data", str(data), "--out", str(out), "--decoder", "auto",
            "--hidden", "8", "--features", "4", "--device", "cpu"]  # fmt: skip
    assert main([*args, "--epochs", "8"]) == 0
    first = load_payload(out)
    chosen = first["meta"]["selection"]["candidate"]
    assert first["config"]["decoder"] == chosen
    assert "<- chosen" in capsys.readouterr().out
    assert main([*args, "--epochs", "12", "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "auto:" not in printed and "<- chosen" not in printed
    assert load_payload(out)["config"]["decoder"] == chosen


def test_auto_is_refused_for_models_without_a_decoder(tmp_path):
    data = tmp_path / "toy.npz"
    toy_dataset(n_users=12, pairs_per_user=4, segment_length=2, seed=4).save(data)
    args = ["train-reward", "--data", str(data), "--out", str(tmp_path / "b.pt")]
    assert main([*args, "--model", "btl", "--decoder", "auto"]) == 2
