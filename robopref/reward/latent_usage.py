"""How much a latent reward model uses its latent: posterior collapse and group separation.

Evaluation only: :func:`latent_usage` reads the users' groups, which nothing that trains or
chooses data may do. Two questions, on held-out users given all of their answers:

* Which dimensions of z carry information? ``per_dim_kl[d]`` is the mean over users of
  KL(q(z_d | answers) || N(0, 1)) in nats; a dimension below ``ACTIVE_KL`` nats is
  collapsed onto the prior (the posterior collapse the SPL paper, arXiv 2603.12595,
  reports for VPL). ``active_dims`` counts the others.
* Can a policy that sees z tell the groups apart? For each pair of groups, the distance
  between their mean posterior means divided by the pooled within-group spread (a d'
  score: about 2 or more is well apart, below 1 the groups overlap); ``min_separation`` is
  the worst pair, the one a policy confuses first. ``principal_ratio`` is the variance of
  the posterior means along their second principal direction over the first (a latent
  that orders users along one line only has it near 0).
* How much of a user's group does z carry? ``group_bits``: a lower bound on the mutual
  information I(z; group) in bits, ``H(group)`` minus the leave-one-out cross-entropy of a
  classifier that tells each held-out user's group from their posterior mean (Gaussian
  classes with one shared diagonal variance: linear discriminant analysis, its class
  probabilities mixed with ``PRIOR_MIX`` of the group shares so that one confidently
  misclassified user cannot cost 20 bits); any classifier's cross-entropy bounds the
  conditional entropy from above (Barber and Agakov, 2003).
  ``group_entropy_bits`` is H(group), the most it can be (1 bit for two equal groups); a
  collapsed latent gives about 0.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from robopref.data.dataset import PreferenceDataset
from robopref.reward.base import RewardModel

#: a latent dimension with less mean KL to the prior than this (nats) is collapsed.
ACTIVE_KL = 0.1
#: share of the group shares mixed into the discriminant's class probabilities (the bound
#: holds for any classifier; without it a few overlapping groups of a handful of users each
#: drove it to 0 on TableSetting although most groups were well apart)
PRIOR_MIX = 0.05


def posterior_moments(
    model: RewardModel, dataset: PreferenceDataset
) -> tuple[np.ndarray, np.ndarray]:
    """``(U, Z)`` posterior means and standard deviations, each user given all answers."""
    means, stds = [], []
    for user in range(dataset.n_users):
        idx = dataset.user_indices(user)
        mean, std = model.posterior((dataset.obs_a[idx], dataset.obs_b[idx], dataset.label[idx]))
        means.append(np.asarray(mean, dtype=np.float64))
        stds.append(np.asarray(std, dtype=np.float64))
    if not means:
        empty = np.zeros((0, model.latent_dim))
        return empty, empty
    return np.stack(means), np.stack(stds)


def usage_from_posteriors(
    means: np.ndarray, stds: np.ndarray, groups: np.ndarray
) -> dict[str, Any]:
    """The figures of the module docstring from posterior ``means``/``stds`` ``(U, Z)`` and
    each user's group ``(U,)`` (negative: no group; such users count for the KL only)."""
    if means.shape != stds.shape or means.ndim != 2 or len(groups) != len(means):
        raise ValueError(
            f"means {means.shape}, stds {stds.shape} and groups {np.shape(groups)} must be "
            "(U, Z), (U, Z) and (U,)"
        )
    var = np.maximum(stds, 1e-12) ** 2
    kl = 0.5 * (means**2 + var - 1.0 - np.log(var))
    per_dim_kl = kl.mean(axis=0) if len(means) else np.zeros(means.shape[1])
    result: dict[str, Any] = {
        "users": int(len(means)),
        "per_dim_kl": [round(float(v), 4) for v in per_dim_kl],
        "active_dims": int((per_dim_kl >= ACTIVE_KL).sum()),
        "separation": {},
        "min_separation": None,
        "principal_ratio": None,
    }
    if len(means) >= 2:
        spread = np.linalg.svd(means - means.mean(axis=0), compute_uv=False) ** 2
        if len(spread) >= 2 and spread[0] > 0:
            result["principal_ratio"] = round(float(spread[1] / spread[0]), 4)
    labelled = [int(g) for g in np.unique(groups) if g >= 0 and (groups == g).sum() >= 2]
    for a, b in itertools.combinations(labelled, 2):
        in_a, in_b = means[groups == a], means[groups == b]
        within = np.concatenate([in_a - in_a.mean(axis=0), in_b - in_b.mean(axis=0)])
        pooled = float(np.sqrt((within**2).sum(axis=1).mean()))
        gap = float(np.linalg.norm(in_a.mean(axis=0) - in_b.mean(axis=0)))
        result["separation"][f"{a}-{b}"] = round(gap / max(pooled, 1e-12), 3)
    if result["separation"]:
        result["min_separation"] = min(result["separation"].values())
    result["group_bits"], result["group_entropy_bits"] = group_information(means, groups)
    return result


def group_information(means: np.ndarray, groups: np.ndarray) -> tuple[float | None, float | None]:
    """A lower bound on I(z; group) in bits and H(group) (module docstring) from posterior
    ``means`` ``(U, Z)`` of users in ``groups`` ``(U,)`` (negative: none, left out); None
    with fewer than two groups of two users each."""
    keep = groups >= 0
    x, g = means[keep].astype(np.float64), groups[keep]
    classes, g = np.unique(g, return_inverse=True)
    counts = np.bincount(g, minlength=len(classes)).astype(np.float64)
    if len(classes) < 2 or counts.min() < 2 or x.shape[1] == 0:
        return None, None
    prior = counts / counts.sum()
    entropy = float(-(prior * np.log2(prior)).sum())
    sums = np.stack([x[g == c].sum(0) for c in range(len(classes))])  # (C, Z)
    squares = (x**2).sum(0)
    cross_entropy = 0.0
    for i in range(len(x)):  # leave user i out of the class means and the variance
        n = counts.copy()
        n[g[i]] -= 1
        centre = (sums - np.eye(len(classes))[g[i]][:, None] * x[i]) / n[:, None]
        spread = (squares - x[i] ** 2) - (n[:, None] * centre**2).sum(0)
        var = np.maximum(spread / max(n.sum() - len(classes), 1.0), 1e-12) + 1e-6
        log_lik = -0.5 * (((x[i] - centre) ** 2) / var).sum(1) + np.log(n / n.sum())
        post = np.exp(log_lik - np.logaddexp.reduce(log_lik))
        mixed = (1.0 - PRIOR_MIX) * post[g[i]] + PRIOR_MIX * prior[g[i]]
        cross_entropy -= float(np.log2(mixed))
    bits = max(0.0, entropy - cross_entropy / len(x))
    return round(bits, 4), round(entropy, 4)


def latent_usage(model: RewardModel, dataset: PreferenceDataset) -> dict[str, Any]:
    """:func:`usage_from_posteriors` for ``model`` on ``dataset``'s users (evaluation only)."""
    means, stds = posterior_moments(model, dataset)
    return usage_from_posteriors(means, stds, np.asarray(dataset.user_group))


def format_usage(name: str, usage: dict[str, Any]) -> str:
    """One line for the command's output."""
    kl = ", ".join(f"{v:.2f}" for v in usage["per_dim_kl"])
    sep = ", ".join(f"{pair} {v:.2f}" for pair, v in usage["separation"].items()) or "-"
    ratio, bits = usage["principal_ratio"], usage.get("group_bits")
    information = "-" if bits is None else f"{bits:.2f} of {usage['group_entropy_bits']:.2f}"
    return (
        f"latent {name}: {usage['active_dims']}/{len(usage['per_dim_kl'])} dims active "
        f"(KL per dim {kl} nats); group separation d' {sep}; I(z; group) >= {information} "
        f"bits; 2nd/1st principal variance {'-' if ratio is None else f'{ratio:.3f}'} "
        f"({usage['users']} users)"
    )
