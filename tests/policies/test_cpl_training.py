"""CPL training: a tiny learning test (latent CPL serves two groups, plain CPL cannot), and
``robopref train-policy --method cpl`` end to end with its refusals."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.policies import ActorCriticPolicy

from robopref.data.dataset import PreferenceDataset
from robopref.policies.checkpoint import load_policy, read_meta
from robopref.policies.cpl import CPLSettings
from robopref.policies.cpl_train import CPLData, CPLTraining, train_cpl
from robopref.policies.evaluate_command import EvaluateOptions, evaluate
from robopref.policies.train import TrainPolicyOptions, train_policy
from robopref.video.policies import VideoOptions, load_policies

STEPS, USERS, PAIRS = 4, 40, 30


def _two_group_data(latent: bool, seed: int = 0) -> CPLData:
    """Segments of uniformly random 1-D actions (goal-agnostic behaviour, as round 0's) in
    random 2-D states; group 0's users prefer the segment that pushes more to +1, group 1's
    to -1 (Bradley-Terry on the summed action). Each user's latent, when there is one, is a
    noisy +-1 by group, as a VPL encoder's posterior means after a few answers would be."""
    rng = np.random.default_rng(seed)
    n = USERS * PAIRS
    user = np.repeat(np.arange(USERS), PAIRS)
    sign = np.where(np.arange(USERS) % 2 == 0, 1.0, -1.0)
    act = rng.uniform(-1, 1, (n, 2, STEPS, 1))
    gap = sign[user] * (act[:, 0].sum((1, 2)) - act[:, 1].sum((1, 2)))
    label = (rng.random(n) < 1 / (1 + np.exp(-3 * gap))).astype(np.float32)
    rows = sign[:, None, None] + 0.2 * rng.standard_normal((USERS, 3, 1))
    latents = rows if latent else np.zeros((USERS, 1, 0))
    return CPLData(
        obs=torch.as_tensor(rng.uniform(-1, 1, (n, 2, STEPS, 2)), dtype=torch.float32),
        act=torch.as_tensor(act, dtype=torch.float32),
        step_mask=torch.ones(n, 2, STEPS),
        label=torch.as_tensor(label),
        user=torch.as_tensor(user),
        latents=torch.as_tensor(latents, dtype=torch.float32),
    )


def _policy(latent_dim: int) -> ActorCriticPolicy:
    torch.manual_seed(0)
    return ActorCriticPolicy(
        gym.spaces.Box(-np.inf, np.inf, (2 + latent_dim,), np.float32),
        gym.spaces.Box(-1, 1, (1,), np.float32),
        lambda _: 1e-3,
        net_arch=[32, 32],
    )


def _served(policy: ActorCriticPolicy, z: list[float], direction: float) -> float:
    """Share of 200 new states where the deterministic action pushes ``direction`` by 0.2+."""
    states = torch.as_tensor(np.random.default_rng(9).uniform(-1, 1, (200, 2)), dtype=torch.float32)
    obs = torch.cat([states, torch.tensor(z).expand(200, len(z))], dim=1)
    with torch.no_grad():
        action = policy.get_distribution(obs).mode().squeeze(-1).clamp(-1, 1)
    return float((direction * action > 0.2).float().mean())


def test_latent_cpl_serves_two_groups_and_plain_cpl_cannot() -> None:
    training = CPLTraining(steps=400, bc_steps=50, batch=64, lr=3e-3)
    settings = CPLSettings(conservative=0.5)
    latent = _policy(1)
    train_cpl(latent, _two_group_data(True), settings, training, seed=0, progress=False)
    plain = _policy(0)
    train_cpl(plain, _two_group_data(False), settings, training, seed=0, progress=False)
    per_group = [_served(latent, [1.0], 1.0), _served(latent, [-1.0], -1.0)]
    assert min(per_group) >= 0.9, per_group
    plain_groups = [_served(plain, [], 1.0), _served(plain, [], -1.0)]
    assert np.mean(plain_groups) <= 0.55, plain_groups


def _options(tmp_path: Path, data: Path, vpl: Path, /, **changes) -> TrainPolicyOptions:
    base = {
        "method": "cpl", "reward": str(vpl), "data": str(data), "out": str(tmp_path / "cpl"),
        "cpl_steps": 30, "cpl_bc_steps": 10, "cpl_batch": 16, "eval_episodes": 2,
        "progress": False,
    }  # fmt: skip
    return TrainPolicyOptions(**{**base, **changes})


def test_train_policy_cpl_writes_a_policy_evaluate_serves(
    tmp_path: Path, tiny_data: Path, tiny_vpl_features: Path
) -> None:
    meta = train_policy(_options(tmp_path, tiny_data, tiny_vpl_features))
    assert meta["method"] == "cpl" and meta["kind"] == "latent" and meta["name"] == "cpl"
    assert meta["latent_dim"] == 3 and meta["steps"] == 40 and len(meta["history"]) == 1
    assert 0.0 <= meta["train_preference_accuracy"] <= 1.0
    assert read_meta(tmp_path / "cpl")["cpl"]["objective"]["alpha"] == CPLSettings().alpha
    plain = train_policy(_options(tmp_path, tiny_data, tiny_vpl_features, cpl_latent="none",
                                  out=str(tmp_path / "plain")))  # fmt: skip
    assert plain["kind"] == "plain" and plain["latent_dim"] == 0 and plain["reward_path"] is None
    again = train_policy(_options(tmp_path, tiny_data, tiny_vpl_features, overwrite=True))
    first = load_policy(tmp_path / "cpl").model.policy.state_dict()
    assert again["train_preference_accuracy"] == meta["train_preference_accuracy"]
    for name, value in load_policy(tmp_path / "cpl").model.policy.state_dict().items():
        assert torch.equal(value, first[name]), f"seeded CPL runs differ in {name}"
    result = evaluate(
        EvaluateOptions(
            policy=[str(tmp_path / "cpl"), str(tmp_path / "plain")], reward=str(tiny_vpl_features),
            users=2, episodes=1, json=str(tmp_path / "e.json"),
        )
    )  # fmt: skip
    names = {row["policy"] for row in result["results"]}
    assert names == {"cpl", "cpl-plain"}
    asked = [r for r in result["episodes"] if r["policy"] == "cpl"]
    assert all(r["queries"] == 4 and len(r["asked"]) == 4 for r in asked)
    assert all(r["queries"] is None for r in result["episodes"] if r["policy"] == "cpl-plain")
    videos = load_policies(
        VideoOptions(policy=str(tmp_path / "cpl"), reward=str(tiny_vpl_features))
    )
    assert [title for title, _, _ in videos] == ["CPL personalized"]


def _version_one(data: Path, out: Path) -> Path:
    with np.load(data) as arrays:
        header = json.loads(arrays["header"].tobytes())
        kept = {k: arrays[k] for k in arrays.files if k not in ("header", "act_a", "act_b")}
    header["schema_version"] = 1
    np.savez(out, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **kept)
    return out


def test_cpl_refusals_come_before_any_work(
    tmp_path: Path, tiny_data: Path, tiny_vpl_features: Path, tiny_btl: Path
) -> None:
    cases = [
        ({"cpl_latent": "both"}, "--cpl-latent 'both'"),
        ({"oracle": True}, "--oracle"),
        ({"algo": "sac"}, "--algo ppo"),
        ({"resume": True}, "no --resume"),
        ({"cpl_conservative": 0.0}, "conservative"),
        ({"cpl_steps": 0, "cpl_bc_steps": 0}, "one positive"),
        ({"cpl_batch": 0}, "--cpl-batch 0 must be above 0"),
        ({"cpl_std": -1.0}, "--cpl-std -1.0 must be 0 or above"),
        ({"reward": str(tiny_btl)}, "has no latent.*--cpl-latent none"),
        ({"data": str(_version_one(tiny_data, tmp_path / "v1.npz"))}, "schema version 1.*actions"),
        ({"env": "robopref/BlockSort-v0"}, "not the dataset's task"),
    ]
    for changes, message in cases:
        with pytest.raises(ValueError, match=message):
            train_policy(_options(tmp_path, tiny_data, tiny_vpl_features, **changes))
    dataset = PreferenceDataset.load(tiny_data)
    dataset.act_a[:] = np.nan
    dataset.act_b[:] = np.nan
    no_actions = dataset.save(tmp_path / "no_actions.npz")
    with pytest.raises(ValueError, match="actions of only 0%.*study created by this version"):
        train_policy(_options(tmp_path, no_actions, tiny_vpl_features))
    assert not (tmp_path / "cpl").exists()
    train_policy(_options(tmp_path, tiny_data, tiny_vpl_features))
    with pytest.raises(ValueError, match="already holds a finished policy"):
        train_policy(_options(tmp_path, tiny_data, tiny_vpl_features))
    assert zipfile.is_zipfile(tmp_path / "cpl" / "model.zip")


def _regret_toy(latent: bool, rankings: bool, seed: int = 0) -> CPLData:
    """A 1-D point that each action moves by 0.1 a; group 0's users want it at +0.8, group
    1's at -0.8 (reward -|x - goal| per step). Segments of random actions from random states,
    judged by regret: the return plus V*(end) - V*(start), V* the value of going straight to
    the goal at top speed. A pair question is answered by Bradley-Terry, a ranking of four by
    Plackett-Luce on those scores; z is a noisy +-1 by group, as a VPL posterior mean."""
    rng = np.random.default_rng(seed)
    items = 4 if rankings else 2
    n = USERS * PAIRS
    user = np.repeat(np.arange(USERS), PAIRS)
    goal = np.where(np.arange(USERS) % 2 == 0, 0.8, -0.8)[user][:, None]
    act = rng.uniform(-1, 1, (n, items, STEPS))
    states = rng.uniform(-1, 1, (n, items, 1)) + 0.1 * np.concatenate(
        [np.zeros((n, items, 1)), np.cumsum(act, -1)], -1
    )  # (n, items, STEPS + 1)
    far = np.abs(states - goal[..., None])

    def value(distance: np.ndarray) -> np.ndarray:
        return -np.maximum(distance[..., None] - 0.1 * np.arange(1, STEPS + 1), 0).sum(-1)

    score = -far[..., :-1].sum(-1) + value(far[..., -1]) - value(far[..., 0])
    noisy = 3 * score + rng.gumbel(size=score.shape)  # Plackett-Luce / Bradley-Terry draws
    order = np.argsort(-noisy, axis=1)
    obs = np.stack([states[..., :-1], rng.uniform(-1, 1, (n, items, STEPS))], -1)
    sign = np.where(np.arange(USERS) % 2 == 0, 1.0, -1.0)
    rows = sign[:, None, None] + 0.2 * rng.standard_normal((USERS, 3, 1))
    data = CPLData(
        obs=torch.as_tensor(obs.reshape(n * items // 2, 2, STEPS, 2), dtype=torch.float32),
        act=torch.as_tensor(act.reshape(n * items // 2, 2, STEPS, 1), dtype=torch.float32),
        step_mask=torch.ones(n * items // 2, 2, STEPS),
        label=torch.as_tensor((order[:, 0] == 0).astype(np.float32)).repeat_interleave(items // 2),
        user=torch.as_tensor(user).repeat_interleave(items // 2),
        latents=torch.as_tensor(rows if latent else np.zeros((USERS, 1, 0)), dtype=torch.float32),
    )
    if rankings:  # item i of question q is pair 2q + i // 2, side i % 2
        data.label = torch.full_like(data.label, float("nan"))
        item = order + np.arange(n)[:, None] * items
        data.ranked = torch.as_tensor(np.stack([item // 2, item % 2], -1))
        data.ranked_user = torch.as_tensor(user)
    return data


def _served_toward(policy: ActorCriticPolicy, z: list[float], goal: float) -> float:
    """Share of 200 new states at least 0.2 from ``goal`` where the deterministic action
    moves toward it by 0.1+."""
    x = np.random.default_rng(9).uniform(-1, 1, 600)
    x = x[np.abs(x - goal) > 0.2][:200]
    states = np.stack([x, np.random.default_rng(8).uniform(-1, 1, len(x))], -1)
    obs = torch.cat([torch.as_tensor(states, dtype=torch.float32),
                     torch.tensor(z).expand(len(x), len(z))], dim=1)  # fmt: skip
    with torch.no_grad():
        action = policy.get_distribution(obs).mode().squeeze(-1).clamp(-1, 1).numpy()
    return float((np.sign(goal - x) * action > 0.1).mean())


@pytest.mark.parametrize("loss", ["pairs", "rankings"])
def test_latent_cpl_on_regret_labels_serves_both_groups_and_plain_cpl_cannot(loss: str) -> None:
    training = CPLTraining(steps=600, bc_steps=50, batch=64, lr=3e-3, loss=loss,
                           bc_data="preferred")  # fmt: skip
    settings = CPLSettings(conservative=0.5)
    latent = _policy(1)
    train_cpl(latent, _regret_toy(True, loss == "rankings"), settings, training, 0, False)
    plain = _policy(0)
    train_cpl(plain, _regret_toy(False, loss == "rankings"), settings, training, 0, False)
    per_group = [_served_toward(latent, [1.0], 0.8), _served_toward(latent, [-1.0], -0.8)]
    assert min(per_group) >= 0.75, per_group
    plain_groups = [_served_toward(plain, [], 0.8), _served_toward(plain, [], -0.8)]
    assert np.mean(plain_groups) <= 0.55, plain_groups


def test_rankings_are_recovered_from_their_pairs_and_train_a_policy(
    tmp_path: Path, tiny_vpl_features: Path
) -> None:
    from robopref.data.collect import CollectOptions, collect
    from robopref.policies.cpl_train import ranked_questions

    options = CollectOptions(users=12, queries_per_user=3, episodes=12, pool_pairs=128,
                             progress=False, seed=3, question="ranking:4")  # fmt: skip
    data_path = tmp_path / "ranked.npz"
    collect(options).save(data_path)
    data = PreferenceDataset.load(data_path)
    ranked, users = ranked_questions(data, str(data_path))
    assert ranked.shape == (36, 4, 2) and np.array_equal(users, np.repeat(np.arange(12), 3))
    segment = {0: data.obs_a, 1: data.obs_b}
    for question, order in enumerate(ranked):  # every stored pair agrees with the order
        rank = {segment[side][pair].tobytes(): i for i, (pair, side) in enumerate(order)}
        for p in np.flatnonzero(data.question == question):
            a_first = rank[data.obs_a[p].tobytes()] < rank[data.obs_b[p].tobytes()]
            assert a_first == (data.label[p] == 1.0)
    meta = train_policy(_options(tmp_path, data_path, tiny_vpl_features, cpl_loss="rankings",
                                 cpl_bc_data="preferred", eval_episodes=0))  # fmt: skip
    assert meta["cpl"]["training"]["loss"] == "rankings" and meta["steps"] == 40
    tie = PreferenceDataset.load(data_path)
    tie.label[0] = 0.5
    with pytest.raises(ValueError, match="strict answers"):
        ranked_questions(tie, "tied.npz")
