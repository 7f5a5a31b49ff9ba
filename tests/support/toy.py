"""A toy preference dataset made without MuJoCo, for the reward-model tests.

A point moves in the square [-1, 1]^2; an observation is ``[x, y, d_1, ..., d_k]`` with
``k`` distractor dimensions of noise. A segment is a straight walk of ``T`` steps between two
random points. Each user wants the point near a hidden goal: the per-step reward is
``-|p - goal|`` (``reward="distance"``) or, with ``reward="sharp"``, a narrow bump
``exp(-|p - goal|^2 / (2 * SHARP_WIDTH^2))`` that is flat away from the goal (a user who
wants the object *there*, and nowhere else will do). ``population="two-modes"`` puts the
users' goals at ``(0.5, 0.5)`` and ``(0.5, -0.5)`` (groups 0 and 1; ``minority_share`` of
them in group 1, half by default, each user's group drawn at random otherwise);
``"continuous"`` draws goals uniformly in ``[-0.6, 0.6]^2`` (group -1).
Answers are Bradley-Terry with rationality ``beta``: P(A) = sigmoid(beta (R_A - R_B)), a
label drawn from it (hard 0/1).
"""

from __future__ import annotations

import numpy as np

from robopref.data.dataset import PreferenceDataset

TWO_MODE_GOALS = np.array([[0.5, 0.5], [0.5, -0.5]])
#: the width of the ``sharp`` reward's bump (the square is 2 wide)
SHARP_WIDTH = 0.25
REWARDS = ("distance", "sharp")


def _segments(rng: np.random.Generator, n: int, steps: int, distractors: int) -> np.ndarray:
    start, end = rng.uniform(-1, 1, (2, n, 1, 2))
    frac = np.linspace(0.0, 1.0, steps).reshape(1, steps, 1)
    path = start + (end - start) * frac
    noise = rng.normal(0.0, 1.0, (n, steps, distractors))
    return np.concatenate([path, noise], -1).astype(np.float32)


def step_rewards(dist: np.ndarray, reward: str) -> np.ndarray:
    """The toy's per-step reward at distance ``dist`` from the goal (module docstring)."""
    if reward == "sharp":
        return np.exp(-np.square(dist) / (2 * SHARP_WIDTH**2))
    return -dist


def _returns(obs: np.ndarray, goals: np.ndarray, reward: str) -> np.ndarray:
    """Returns of segments ``(P, T, O)`` for each goal ``(G, 2)`` -> ``(P, G)``."""
    dist = np.linalg.norm(obs[:, None, :, :2] - goals[None, :, None, :], axis=-1)
    return step_rewards(dist, reward).sum(-1)


def toy_dataset(
    n_users: int = 60,
    pairs_per_user: int = 16,
    segment_length: int = 4,
    distractors: int = 2,
    beta: float = 20.0,
    population: str = "two-modes",
    seed: int = 0,
    reward: str = "distance",
    minority_share: float = 0.5,
) -> PreferenceDataset:
    """A :class:`PreferenceDataset` of the toy task (see the module docstring)."""
    if population not in ("two-modes", "continuous"):
        raise ValueError(f"population={population!r} must be 'two-modes' or 'continuous'")
    if reward not in REWARDS:
        raise ValueError(f"reward={reward!r} must be one of {REWARDS}")
    if not 0.0 <= minority_share <= 1.0:
        raise ValueError(f"minority_share={minority_share} must be a share between 0 and 1")
    rng = np.random.default_rng(seed)
    if population == "two-modes" and minority_share == 0.5:
        group = np.arange(n_users) % 2
        goals = TWO_MODE_GOALS[group]
    elif population == "two-modes":
        group = np.zeros(n_users, dtype=np.int64)
        group[: int(round(minority_share * n_users))] = 1
        group = rng.permutation(group)
        goals = TWO_MODE_GOALS[group]
    else:
        group = np.full(n_users, -1)
        goals = rng.uniform(-0.6, 0.6, (n_users, 2))
    n_pairs = n_users * pairs_per_user
    obs_a = _segments(rng, n_pairs, segment_length, distractors)
    obs_b = _segments(rng, n_pairs, segment_length, distractors)
    user = np.repeat(np.arange(n_users), pairs_per_user)
    own = goals[user][:, None, :]
    gap = step_rewards(np.linalg.norm(obs_a[..., :2] - own, axis=-1), reward).sum(
        -1
    ) - step_rewards(np.linalg.norm(obs_b[..., :2] - own, axis=-1), reward).sum(-1)
    prob = 1.0 / (1.0 + np.exp(-beta * gap))
    label = (rng.random(n_pairs) < prob).astype(np.float32)
    reference = TWO_MODE_GOALS if population == "two-modes" else goals
    votes = _returns(obs_a, reference, reward) > _returns(obs_b, reference, reward)
    contested = votes.any(1) & ~votes.all(1)
    return PreferenceDataset(
        env_id="toy/PointGoal-v0",
        feature_names=tuple(f"s{i}" for i in range(obs_a.shape[-1])),  # the state is the feature
        obs_a=obs_a,
        obs_b=obs_b,
        feat_a=obs_a.copy(),
        feat_b=obs_b.copy(),
        act_a=np.full((*obs_a.shape[:2], 2), np.nan, np.float32),  # no actions: no agent acts
        act_b=np.full((*obs_b.shape[:2], 2), np.nan, np.float32),
        label=label,
        user=user.astype(np.int64),
        user_goal=goals.astype(np.float64),
        user_group=group.astype(np.int64),
        true_label=(gap > 0).astype(np.float32),
        answer_prob=prob.astype(np.float32),
        contested=contested,
        meta={"population": population, "seed": seed, "beta": beta, "reward": reward},
    )


def rank_two_dataset(
    n_users: int = 60,
    pairs_per_user: int = 16,
    segment_length: int = 4,
    seed: int = 0,
    beta: float = 10.0,
) -> tuple[PreferenceDataset, np.ndarray]:
    """A toy whose rewards have rank two: user u's per-step reward is ``a_u x + (1 - a_u) y``
    of the point's position, ``a_u`` uniform in [0, 1] (a continuum of users between two
    basis rewards). Returns the dataset and each user's ``a_u``."""
    rng = np.random.default_rng(seed)
    mix = rng.uniform(0.0, 1.0, n_users)
    n_pairs = n_users * pairs_per_user
    obs_a = _segments(rng, n_pairs, segment_length, 2)
    obs_b = _segments(rng, n_pairs, segment_length, 2)
    user = np.repeat(np.arange(n_users), pairs_per_user)
    weights = np.stack([mix, 1.0 - mix], -1)[user]
    gap = ((obs_a[..., :2] - obs_b[..., :2]).sum(1) * weights).sum(-1)
    prob = 1.0 / (1.0 + np.exp(-beta * gap))
    label = (rng.random(n_pairs) < prob).astype(np.float32)
    data = PreferenceDataset(
        env_id="toy/PointRankTwo-v0",
        feature_names=tuple(f"s{i}" for i in range(obs_a.shape[-1])),
        obs_a=obs_a, obs_b=obs_b, feat_a=obs_a.copy(), feat_b=obs_b.copy(),
        act_a=np.full((*obs_a.shape[:2], 2), np.nan, np.float32),
        act_b=np.full((*obs_b.shape[:2], 2), np.nan, np.float32),
        label=label, user=user.astype(np.int64),
        user_goal=np.stack([mix, 1.0 - mix], -1), user_group=np.full(n_users, -1),
        true_label=(gap > 0).astype(np.float32), answer_prob=prob.astype(np.float32),
        contested=np.ones(n_pairs, bool), meta={"population": "rank-two", "seed": seed},
    )  # fmt: skip
    return data, mix
