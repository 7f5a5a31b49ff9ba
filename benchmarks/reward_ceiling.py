"""How well can any reward model do on a two-modes dataset? The group-oracle baseline.

A BTL model trained only on the users of one group is what VPL would be with a perfect z:
the best a single reward per group can do with this much data. It is trained on each group's
training users (the ``train-reward`` split: ``--split-seed``, 20% held out, 10% for early
stopping) and scored, like ``eval-reward``, on that group's held-out users: accuracy on all
and on contested pairs, and as a fraction of the Bayes ceiling. ``--with`` appends the
named ``info["features"]`` of each step to the observation (``drop_height`` is in the users'
reward but not in PlatePlacement's observation), to show what the observation lacks:

    python benchmarks/reward_ceiling.py --data data/plate.npz
    python benchmarks/reward_ceiling.py --data data/plate.npz --with drop_height
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from robopref.data.dataset import PreferenceDataset
from robopref.reward import build_model
from robopref.reward.evaluation import evaluate_few_shot
from robopref.reward.train_command import split_three_ways
from robopref.reward.training import TrainSettings


def with_features(data: PreferenceDataset, names: list[str]) -> PreferenceDataset:
    """``data`` with the named features appended to every step's observation."""
    if not names:
        return data
    missing = sorted(set(names) - set(data.feature_names))
    if missing:
        raise SystemExit(f"features {missing} not in the dataset's {list(data.feature_names)}")
    cols = [data.feature_names.index(n) for n in names]
    return dataclasses.replace(
        data,
        obs_a=np.concatenate([data.obs_a, data.feat_a[..., cols]], -1),
        obs_b=np.concatenate([data.obs_b, data.feat_b[..., cols]], -1),
    )


def main() -> None:
    """Train and score one BTL per group; print a line per group."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/plate.npz")
    parser.add_argument("--with", dest="extra", nargs="*", default=[], help="features to add")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = with_features(PreferenceDataset.load(args.data), args.extra)
    train, val, test_users = split_three_ways(data, 0.2, 0.1, args.split_seed)
    test = data.subset_users(np.asarray(test_users))
    for group in sorted(set(data.user_group.tolist()) - {-1}):

        def members(part: PreferenceDataset, g: int = group) -> PreferenceDataset:
            return part.subset_users(np.flatnonzero(part.user_group == g))

        model = build_model("btl", data.obs_a.shape[-1], {"hidden": (128, 128)})
        settings = TrainSettings(epochs=400, patience=100, seed=args.seed)
        model.fit(members(train), val_dataset=members(val), settings=settings, device="cpu",
                  log=lambda _: None)  # fmt: skip
        rows = evaluate_few_shot(model, members(test), [0], ["random"], progress=False)
        scores = "  ".join(
            f"{r['subset']} {r['accuracy']:.3f} ({r['fraction_of_ceiling']:.3f} of ceiling, "
            f"n={r['n_pairs']})"
            for r in rows
        )
        print(f"group {group} BTL, obs + {args.extra or 'nothing'}: {scores}", flush=True)


if __name__ == "__main__":
    main()
