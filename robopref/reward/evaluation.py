"""Few-shot pairwise accuracy of reward models on held-out users.

Protocol (leave one out, so that every k up to n - 1 leaves a pair to score): for each
held-out user and each of the user's *scored* pairs j (a recorded label on one side of
0.5), the context is chosen among the user's *other* pairs, by ``infer_user`` with the
strategy, the user answering with the recorded labels (skips and ties included, as asked).
The prediction for pair j with z = the posterior mean after k answers (``posterior``:
``infer_user``'s likelihood posterior by default, or the encoder's) is compared with the
recorded label. Random and active contexts are nested (the k = 2 context is the start of
the k = 4 one), so accuracy against k is a smooth curve. ``k`` larger than the user's other
pairs is capped (``k_used`` reports the mean actually asked).

The Bayes ceiling on the same pairs is the mean of max(answer_prob, 1 - answer_prob): the
accuracy of a predictor that knows the user's exact answering probabilities. Subsets:
``all`` scored pairs and ``contested`` ones (the population's users disagree on them).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from robopref.data.dataset import PreferenceDataset
from robopref.reward.active import BALD_SAMPLES, POSTERIOR, answers_posterior, infer_user
from robopref.reward.base import RewardModel
from robopref.reward.latent_usage import posterior_moments
from robopref.reward.nets import as_tensor

SUBSETS = ("all", "contested")


def scored_pairs(dataset: PreferenceDataset, user: int) -> np.ndarray:
    """Indices of ``user``'s pairs with a recorded label on one side of 0.5."""
    idx = dataset.user_indices(user)
    label = dataset.label[idx]
    return idx[~np.isnan(label) & (label != 0.5)]


def _predict(
    model: RewardModel, dataset: PreferenceDataset, pair: int, z: np.ndarray
) -> np.ndarray:
    """Logits of ``pair`` for each row of ``z`` ``(K, Z)`` -> ``(K,)``."""
    obs_a = as_tensor(dataset.obs_a[pair], model.device)[None]
    obs_b = as_tensor(dataset.obs_b[pair], model.device)[None]
    with torch.no_grad():
        if model.latent_dim == 0:
            logit = model.pair_logits(obs_a, obs_b, None)
            return logit.expand(z.shape[0]).cpu().numpy()
        return model.pair_logits(obs_a, obs_b, as_tensor(z, model.device)).cpu().numpy()


def evaluate_few_shot(
    model: RewardModel,
    dataset: PreferenceDataset,
    ks: list[int],
    strategies: list[str],
    seed: int = 0,
    n_samples: int = BALD_SAMPLES,
    progress: bool = True,
    posterior: str = POSTERIOR,
) -> list[dict[str, Any]]:
    """Accuracy rows ``{strategy, k, subset, accuracy, ceiling, fraction_of_ceiling,
    n_pairs, k_used, accuracy_true}`` over every user of ``dataset`` (module docstring)."""
    if not ks or min(ks) < 0:
        raise ValueError(f"query counts {ks} must be a non-empty list of numbers >= 0")
    # (strategy, k) -> per scored pair: correct, ceiling, contested, k used, correct vs truth
    records: dict[tuple[str, int], list[tuple[bool, float, bool, int, bool]]] = defaultdict(list)
    users = range(dataset.n_users)
    for user in tqdm(
        users, desc=f"eval {model.kind}", disable=None if progress else True, leave=False
    ):
        own = dataset.user_indices(user)
        for pair in scored_pairs(dataset, user):
            pool = own[own != pair]
            label = float(dataset.label[pair])
            prob = float(dataset.answer_prob[pair])
            ceiling = max(prob, 1.0 - prob)
            truth = float(dataset.true_label[pair])
            # a set is chosen for its budget (active/random: the first k of one run)
            runs = [(s, [k]) for s in strategies if s == "sets" for k in ks]
            runs += [(s, ks) for s in strategies if s != "sets"]
            for strategy, budgets in runs:
                result = infer_user(
                    model,
                    lambda i, pool=pool: float(dataset.label[pool[i]]),
                    min(max(budgets), len(pool)) if model.latent_dim else 0,
                    strategy,
                    (dataset.obs_a[pool], dataset.obs_b[pool]),
                    np.random.default_rng([seed, user, int(pair)]),
                    n_samples,
                    posterior,
                )
                steps = len(result.means) - 1
                used = [min(k, steps) if model.latent_dim else 0 for k in budgets]
                logits = _predict(model, dataset, int(pair), result.means[used])
                for k, logit in zip(budgets, logits, strict=True):
                    records[(strategy, k)].append(
                        (
                            (logit > 0) == (label > 0.5),
                            ceiling,
                            bool(dataset.contested[pair]),
                            min(k, len(pool)),
                            truth != 0.5 and (logit > 0) == (truth > 0.5),
                        )
                    )
    rows = []
    for (strategy, k), items in records.items():
        data = np.array(items, dtype=np.float64)
        for subset in SUBSETS:
            keep = data[:, 2] > 0 if subset == "contested" else np.ones(len(data), bool)
            chosen = data[keep]
            n = int(len(chosen))
            accuracy = float(chosen[:, 0].mean()) if n else float("nan")
            ceiling = float(chosen[:, 1].mean()) if n else float("nan")
            rows.append(
                {
                    "strategy": strategy,
                    "k": int(k),
                    "subset": subset,
                    "accuracy": accuracy,
                    "ceiling": ceiling,
                    "fraction_of_ceiling": accuracy / ceiling if n else float("nan"),
                    "n_pairs": n,
                    "k_used": float(chosen[:, 3].mean()) if n else float("nan"),
                    "accuracy_true": float(chosen[:, 4].mean()) if n else float("nan"),
                }
            )
    return rows


def posterior_means(model: RewardModel, dataset: PreferenceDataset) -> np.ndarray:
    """``(U, Z)``: each user's posterior mean given all of the user's answered pairs."""
    return posterior_moments(model, dataset)[0]


def few_shot_means(
    model: RewardModel,
    dataset: PreferenceDataset,
    ks: tuple[int, ...] = (1, 2, 4, 8, 16),
    strategy: str = "active",
    seed: int = 0,
    with_all_answers: bool = True,
    posterior: str = "encoder",
) -> tuple[np.ndarray, np.ndarray]:
    """The latents a new user gets after few answers, for training a policy on them.

    For each user of ``dataset``, ``infer_user`` asks up to ``max(ks)`` of the user's own pairs
    (answered with the recorded labels) and the posterior mean after each ``k`` in ``ks`` is
    kept, and (``with_all_answers``) the mean given all of the user's answers. Returns ``(means,
    user)``: ``(R, Z)`` latents and ``(R,)`` the user index of each row. Few answers give
    latents of another spread than many (on PlatePlacement, larger): a policy trained only on
    the all-answers means meets latents it never saw once it serves a new user after 4 queries.
    ``posterior`` defaults to the encoder: every measured loop and shipped policy trained on
    the encoder's few-shot means (``infer_user``'s likelihood default came after them).
    """
    rows, owners = [], []
    rng = np.random.default_rng(seed)
    for user in range(dataset.n_users):
        own = dataset.user_indices(user)
        k_max = min(max(ks), len(own))
        result = infer_user(
            model,
            lambda i, own=own: float(dataset.label[own[i]]),
            k_max,
            strategy,
            (dataset.obs_a[own], dataset.obs_b[own]),
            rng=rng,
            posterior=posterior,
        )
        for k in ks:
            rows.append(np.asarray(result.means[min(k, len(result.means) - 1)], dtype=np.float64))
            owners.append(user)
        if with_all_answers:
            context = (dataset.obs_a[own], dataset.obs_b[own], dataset.label[own])
            mean, _ = answers_posterior(model, context, posterior)
            rows.append(np.asarray(mean, dtype=np.float64))
            owners.append(user)
    return np.stack(rows), np.asarray(owners, dtype=np.int64)
