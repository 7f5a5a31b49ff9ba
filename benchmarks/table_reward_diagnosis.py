"""Why VPL misses on TableSetting: is it the latent, or the reward that the answers teach?

A diagnosis for the 8-type loop (README, "Measured: the loop on TableSetting"), not a
method: it reads what nothing that trains may read. Each user's arrangement type is taken
from the true reward family (the type whose Bayes posterior, from all the user's answers
under :func:`robopref.users.synthetic.table_reward` and the label model's beta, is highest: 0.999 of
the mass on average for the loop's 48 answers). Every user's last ``--held-out`` answers are
kept back; the rest train one reward MLP on the 18 features, conditioned on

* ``free``: a learned embedding per user (no encoder: the best any amortised latent can do
  with these answers), or
* ``known``: the true type as three +-1 bits (no latent to infer at all).

It prints, for the held-out pairs, the accuracy against the noise-free labels overall and on
the pairs whose label flips when one part of the user's type flips (the cup's side, the
utensil's side, the plate's depth). If ``known`` cannot rank the cup- and the
utensil-informative pairs, no encoder can: the answers are too few or too noisy for the
reward's shape, whatever the latent.

    python benchmarks/table_reward_diagnosis.py runs/table_arr/vpl.npz --json \
        runs/bench/table_diagnosis.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from robopref.data.dataset import PreferenceDataset
from robopref.reward.nets import mlp
from robopref.tasks.table_setting import ARRANGEMENT_TYPES, table_reward
from robopref.users.synthetic import LabelModel, task_reward

#: type index bits: ``index = 4 * cup_right + 2 * utensil_right + plate_further_in``
PART_BITS = {"cup side": 4, "utensil side": 2, "plate depth": 1}


def true_margins(dataset: PreferenceDataset) -> np.ndarray:
    """``(8, P)``: R_A - R_B of every pair under each arrangement type's user reward."""
    entry, cols = task_reward(dataset.env_id, dataset.feature_names)
    margins = []
    for goal in ARRANGEMENT_TYPES.values():
        goal_array = np.asarray(goal)
        ret_a = table_reward(dataset.feat_a, goal_array, 1.0, cols).sum(-1)
        ret_b = table_reward(dataset.feat_b, goal_array, 1.0, cols).sum(-1)
        margins.append((ret_a - ret_b) / entry.scale)
    return np.asarray(margins)


def user_types(dataset: PreferenceDataset, margins: np.ndarray) -> tuple[np.ndarray, float]:
    """Each user's most probable type from all their answers, and the mean posterior mass."""
    beta = LabelModel().beta
    prob = np.clip(1.0 / (1.0 + np.exp(-beta * margins)), 1e-6, 1 - 1e-6)
    users = int(dataset.user.max()) + 1
    log_lik = np.zeros((users, len(margins)))
    for u in range(users):
        mine = (dataset.user == u) & ~np.isnan(dataset.label)
        y, p = dataset.label[mine], prob[:, mine]
        log_lik[u] = (y * np.log(p) + (1 - y) * np.log(1 - p)).sum(-1)
    post = np.exp(log_lik - log_lik.max(1, keepdims=True))
    post /= post.sum(1, keepdims=True)
    return post.argmax(1), float(post.max(1).mean())


def fit_and_score(
    dataset: PreferenceDataset,
    types: np.ndarray,
    margins: np.ndarray,
    condition: str,
    held_out: int,
    epochs: int,
    seed: int,
) -> dict[str, float]:
    """Train the conditioned reward MLP and score the held-out pairs (module docstring)."""
    torch.manual_seed(seed)
    feats = np.concatenate([dataset.feat_a, dataset.feat_b]).reshape(-1, dataset.feat_a.shape[-1])
    mean, std = feats.mean(0), feats.std(0) + 1e-6
    feat_a = torch.tensor((dataset.feat_a - mean) / std, dtype=torch.float32)
    feat_b = torch.tensor((dataset.feat_b - mean) / std, dtype=torch.float32)
    label = torch.tensor(dataset.label)
    user = torch.tensor(dataset.user)
    users = len(types)
    order = np.zeros(len(dataset.user), dtype=int)
    for u in range(users):
        order[dataset.user == u] = np.arange(int((dataset.user == u).sum()))
    counts = np.bincount(dataset.user, minlength=users)[dataset.user]
    test = order >= counts - held_out
    train = torch.tensor(~test) & ~torch.isnan(label)
    if condition == "free":
        latent: torch.Tensor = nn.Parameter(torch.zeros(users, 4))
        extra = [latent]
    else:
        bits = np.stack([(types >> b) & 1 for b in (2, 1, 0)], 1) * 2.0 - 1.0
        latent, extra = torch.tensor(bits, dtype=torch.float32), []
    net = mlp(feat_a.shape[-1] + latent.shape[-1], (128, 128), 1)

    def returns(segments: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        z_steps = z.unsqueeze(1).expand(-1, segments.shape[1], -1)
        return net(torch.cat([segments, z_steps], -1)).squeeze(-1).sum(-1)

    optimiser = torch.optim.Adam([*net.parameters(), *extra], lr=1e-3)
    train_index = torch.nonzero(train).squeeze(-1)
    for _ in range(epochs):
        for batch in train_index[torch.randperm(len(train_index))].split(512):
            z = latent[user[batch]]
            logits = returns(feat_a[batch], z) - returns(feat_b[batch], z)
            loss = functional.binary_cross_entropy_with_logits(logits, label[batch])
            if extra:
                loss = loss + 1e-3 * latent.square().mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        z = latent[user]
        predicted = (returns(feat_a, z) - returns(feat_b, z)).numpy() > 0
    pairs = np.arange(len(dataset.user))
    own = margins[types[dataset.user], pairs] > 0
    scores = {"all": float(np.mean(predicted[test] == own[test]))}
    for part, bit in PART_BITS.items():
        informative = test & (own != (margins[types[dataset.user] ^ bit, pairs] > 0))
        scores[part] = float(np.mean(predicted[informative] == own[informative]))
        scores[f"{part} pairs"] = int(informative.sum())
    return scores


def main() -> None:
    """Print the table (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="a TableSetting loop's vpl.npz")
    parser.add_argument("--held-out", type=int, default=8, help="answers kept back per user")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    dataset = PreferenceDataset.load(args.dataset, expected_env="robopref/TableSetting-v0")
    torch.set_num_threads(1)
    margins = true_margins(dataset)
    types, mass = user_types(dataset, margins)
    print(f"{len(types)} users, type posterior mass from all answers: {mass:.3f}")
    results: dict[str, dict[str, float]] = {}
    for condition in ("free", "known"):
        start = time.perf_counter()
        results[condition] = fit_and_score(
            dataset, types, margins, condition, args.held_out, args.epochs, args.seed
        )
        row = results[condition]
        parts = "  ".join(f"{part} {row[part]:.2f} ({row[part + ' pairs']})" for part in PART_BITS)
        print(
            f"{condition:>5}: held-out accuracy {row['all']:.2f}  informative pairs: {parts}"
            f"  [{time.perf_counter() - start:.0f} s]",
            flush=True,
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"type_mass": mass, **results}, indent=2))


if __name__ == "__main__":
    main()
