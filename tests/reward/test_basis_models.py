"""The literature's models after VPL on toys with a known answer: a mixture of BTL rewards
fitted by EM recovers two clusters of users; the low-rank (LoRe / PAL) model recovers a
rank-two family of rewards and serves a new user from a few answers; both go through
train-reward and eval-reward like the other kinds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from robopref.cli import main
from robopref.data.dataset import PreferenceDataset
from robopref.reward.basis import BasisConfig
from robopref.reward.data import PairContext, UserTensors
from robopref.reward.evaluation import evaluate_few_shot
from robopref.reward.lowrank import fit_user_latents
from robopref.reward.registry import build_model
from robopref.reward.training import TrainSettings
from tests.support.toy import rank_two_dataset, toy_dataset

SETTINGS = TrainSettings(epochs=150, lr=3e-3, patience=40)


def _fit(kind: str, split: dict[str, PreferenceDataset], **config: object):
    torch.manual_seed(0)
    model = build_model(kind, split["all"].obs_a.shape[-1], {"hidden": (64, 64), **config})
    model.fit(split["train"], val_dataset=split["val"], settings=SETTINGS, device="cpu",
              log=lambda _: None)  # fmt: skip
    return model


def _split(data: PreferenceDataset) -> dict[str, PreferenceDataset]:
    rest, test = data.split_users(0.25, 0)
    train, val = rest.split_users(0.15, 0)
    return {"all": data, "train": train, "val": val, "test": test}


def _accuracy(rows: list[dict], k: int, subset: str = "contested") -> float:
    return next(r for r in rows if r["k"] == k and r["subset"] == subset)["accuracy"]


@pytest.fixture(scope="module")
def rank_two() -> tuple[dict[str, PreferenceDataset], np.ndarray]:
    data, mix = rank_two_dataset(n_users=80, pairs_per_user=16, seed=0)
    return _split(data), mix


def test_the_mixture_recovers_two_clusters_of_users(toy_split) -> None:
    model = _fit("mixture", toy_split, components=2)
    test = toy_split["test"]
    users = UserTensors.from_dataset(test)
    with torch.no_grad():
        gamma = model.responsibilities(model.batch_differences(users), users.label)
    component = gamma.argmax(-1).numpy()
    agreement = float(np.mean(component == test.user_group))
    assert max(agreement, 1.0 - agreement) >= 0.9  # the clusters, up to their numbering
    assert 0.3 <= float(model.log_mixing().exp()[0].detach()) <= 0.7  # two groups of equal size
    rows = evaluate_few_shot(model, test, [0, 4], ["active"], progress=False)
    assert _accuracy(rows, 4) >= 0.85 and _accuracy(rows, 0) <= 0.65


def test_the_low_rank_model_recovers_a_rank_two_reward(rank_two, toy_trainer) -> None:
    split, mix = rank_two
    model = _fit("lowrank", split, components=4)
    states = np.random.default_rng(1).uniform(-1, 1, (400, 4)).astype(np.float32)
    with torch.no_grad():
        basis = model.basis(model.normalize(torch.as_tensor(states))).numpy()
    design = np.c_[basis, np.ones(len(basis))]
    for true in (states[:, 0], states[:, 1]):  # both true basis rewards lie in the span
        coef, *_ = np.linalg.lstsq(design, true, rcond=None)
        assert 1.0 - np.var(true - design @ coef) / np.var(true) >= 0.95
    # each held-out user's reward, from their answers, ranks states as theirs does
    test = split["test"]
    agreement = []
    for user in range(test.n_users):
        mean, _ = model.posterior(PairContext.from_dataset(test, np.flatnonzero(test.user == user)))
        a = test.user_goal[user, 0]
        true = a * states[:, 0] + (1 - a) * states[:, 1]
        agreement.append(np.corrcoef(model.reward(states, mean), true)[0, 1])
    assert np.median(agreement) >= 0.9
    # a new user from a handful of answers, better than one reward for everybody
    btl = toy_trainer("btl", split)
    low = evaluate_few_shot(model, test, [0, 4], ["active"], progress=False)
    one = evaluate_few_shot(btl, test, [4], ["active"], progress=False)
    assert _accuracy(low, 4, "all") >= _accuracy(one, 4, "all") + 0.05
    assert _accuracy(low, 4, "all") > _accuracy(low, 0, "all")


def test_user_weights_follow_the_answers_and_no_answer_is_the_prior() -> None:
    differences = torch.tensor([[[2.0, -2.0], [1.0, -1.0], [3.0, 0.0]]])  # (1, N, K=2)
    z, std = fit_user_latents(differences, torch.full((1, 3), float("nan")), 0.5)
    assert torch.allclose(z, torch.zeros(1, 2)) and torch.allclose(std, torch.ones(1, 2))
    likes_first, _ = fit_user_latents(differences, torch.ones(1, 3), 0.5)
    likes_second, _ = fit_user_latents(differences, torch.zeros(1, 3), 0.5)
    assert likes_first[0, 0] > likes_first[0, 1] and likes_second[0, 1] > likes_second[0, 0]
    # the MAP is a stationary point of log prior + log likelihood
    z = likes_first.clone().requires_grad_(True)
    logits = (torch.softmax(z / 0.5, -1).unsqueeze(-2) * differences).sum(-1)
    objective = torch.nn.functional.logsigmoid(logits).sum() - 0.5 * z.square().sum()
    (gradient,) = torch.autograd.grad(objective, z)
    assert gradient.abs().max() < 1e-3


def test_the_mixtures_posterior_weights_are_its_responsibilities(toy_split) -> None:
    model = build_model("mixture", 4, {"hidden": (8,), "components": 3})
    test = toy_split["test"]
    context = PairContext.from_dataset(test, np.flatnonzero(test.user == 0)[:5])
    mean, std = model.posterior(context)
    users = UserTensors.from_dataset(test)
    with torch.no_grad():
        gamma = model.responsibilities(model.batch_differences(users)[0, :5], users.label[0, :5])
        np.testing.assert_allclose(model.weights(torch.as_tensor(mean)), gamma, atol=1e-5)
    assert np.allclose(std, model.temperature)
    empty, _ = model.posterior(PairContext.empty(test.segment_length, 4))
    with torch.no_grad():
        prior = model.weights(torch.as_tensor(empty))
    np.testing.assert_allclose(prior, model.log_mixing().exp().detach(), atol=1e-5)


def test_basis_models_refuse_a_single_component() -> None:
    with pytest.raises(ValueError, match="components=1 must be at least 2"):
        BasisConfig(components=1)


@pytest.mark.parametrize("kind", ["lowrank", "mixture"])
def test_train_and_eval_reward_take_the_new_kinds(kind, tmp_path) -> None:
    data = tmp_path / "toy.npz"
    toy_dataset(n_users=30, pairs_per_user=8, segment_length=3, seed=3).save(data)
    out = tmp_path / f"{kind}.pt"
    args = ["train-reward", "--data", str(data), "--model", kind, "--out", str(out),
            "--epochs", "3", "--hidden", "16", "--components", "3", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    report = tmp_path / "eval.json"
    assert main(["eval-reward", "--model", str(out), "--data", str(data), "--queries", "0,2",
                 "--json", str(report)]) == 0  # fmt: skip
    written = json.loads(report.read_text())
    assert {r["k"] for r in written["results"]} == {0, 2}
    assert written["results"][0]["model"] == kind


def test_the_swap_guard_keeps_a_collapsing_vpl_latent_in_use(toy_split, toy_trainer) -> None:
    """A KL weight of 10 and no free nats collapse VPL's latent on the toy (the groups cannot
    be told apart from its posteriors); the swap guard keeps z carrying the answers."""
    from robopref.reward.evaluation import posterior_means
    from robopref.reward.latent_usage import group_information

    test = toy_split["test"]
    figures = {}
    for guard in (0.0, 5.0):
        model = toy_trainer("vpl", toy_split, kl_weight=10.0, free_nats=0.0, swap_guard=guard)
        bits, _ = group_information(posterior_means(model, test), test.user_group)
        rows = evaluate_few_shot(model, test, [4], ["active"], progress=False)
        figures[guard] = (bits, _accuracy(rows, 4))
    assert figures[0.0][0] <= 0.1 and figures[0.0][1] <= 0.65  # collapsed: z is unused
    assert figures[5.0][0] >= 0.5 and figures[5.0][1] >= figures[0.0][1] + 0.15
