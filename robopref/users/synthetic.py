"""Synthetic users: a hidden goal, a reward over the env's features, and a labelling model.

A :class:`SyntheticUser` judges robot behaviour by the task state the env reports in
``info["features"]`` (never by MuJoCo internals): :meth:`SyntheticUser.reward` maps features
of shape ``(..., F)`` to a per-step reward of shape ``(...)``, vectorized over pairs and
steps. It answers "A or B?" for a pair of segments with :meth:`SyntheticUser.answer`;
:func:`label_pairs` labels many pairs of many users at once (what collection uses).

Each task's reward is in its spec (:class:`robopref.tasks.TaskReward`, in the task's module
under robopref/tasks/): a small reward function of ``(features, goal, norm_weight,
columns)`` plus its normalisation constants. Every user of
a task shares the *norms* (do not drop the object from high, keep it on the table), scaled
by ``norm_weight``; the goal part is personal.

**Normalisation.** The per-step reward a user reports is ``(raw - offset) / scale`` with a
per-task ``offset`` and ``scale``: the mean and standard deviation of the raw per-step reward
over the states of the default behaviour mix (:class:`robopref.data.rollouts.BehaviourMix`, 200
episodes, seed 0), judged by 64 users with goals drawn uniformly from the goal space and
``norm_weight = 1`` (:func:`reward_moments` recomputes them; ``tests/test_users.py`` checks
the table against it). A segment's return is the myopia-weighted *mean* of its per-step
rewards, so it is in units of "standard deviations of a step's reward" whatever the segment
length: one ``beta`` means the same noise on every task and every segment length.

**Labelling** (:class:`LabelModel`, after B-Pref's simulated teachers and RLAIF): with
returns ``R_A``, ``R_B`` and ``D = R_A - R_B``

* skip: if ``skip_threshold`` is set and both returns are below it, no answer (NaN);
* tie: if ``|D| <= equal_threshold``, the label is 0.5;
* otherwise the content answer prefers A with ``p = mistake + (1 - 2 mistake) sigmoid(beta D)``;
* position bias ``b``: with probability ``b`` the user picks whichever option was shown
  first (A), so P(A) = ``b + (1 - b) p``; ``both_orders`` asks again with B shown first and
  averages the two answers, giving the expected label ``b / 2 + (1 - b) p`` (symmetric);
* ``soft``: the label is that probability itself instead of a sampled 0/1 answer.

The defaults (:data:`DEFAULT_LABEL_MODEL`) are a mildly noisy annotator: ``beta = 20``
(a return gap of 0.05 standard deviations is answered right 73% of the time, 0.15 at 95%),
no myopia, 1% mistakes, no skips, ties within 0.01, hard labels, no position bias. On
two-modes PlatePlacement with 10-step segments they give a Bayes ceiling of about 0.97.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from robopref.tasks import task_spec
from robopref.tasks.spec import TaskReward
from robopref.users.question_types import QuestionType


def task_reward(env_id: str, feature_names: Sequence[str]) -> tuple[TaskReward, dict[str, int]]:
    """The user reward of task ``env_id`` (its spec's) and the column index of each feature
    name."""
    entry = task_spec(env_id).reward
    cols = {name: i for i, name in enumerate(feature_names)}
    missing = [name for name in entry.required if name not in cols]
    if missing:
        raise ValueError(
            f"features {list(feature_names)} of {env_id} lack {missing}: pass the env's "
            "env.unwrapped.feature_names"
        )
    return entry, cols


def segment_scores(
    env_id: str,
    feature_names: Sequence[str],
    features: np.ndarray,
    goals: np.ndarray,
    norm_weight: Any,
    label_model: LabelModel,
) -> np.ndarray:
    """What users judge segments ``(..., T, F)`` by, ``(...)``: the normalised, myopic
    partial return, plus for ``label_model.label == "regret"`` the optimal value's change
    over the segment, ``(V*(s_end) - V*(s_start)) / T`` (:mod:`robopref.users.optimal_value`).

    ``goals`` and ``norm_weight`` broadcast against the features' leading axes *and* the
    step axis (``(..., 1, D)`` and ``(..., 1)``, or one goal ``(D,)`` and a number).
    """
    entry, cols = task_reward(env_id, feature_names)
    features = np.asarray(features)
    goals = np.asarray(goals, dtype=np.float64)
    rewards = (entry.fn(features, goals, norm_weight, cols) - entry.offset) / entry.scale
    score = label_model.segment_return(rewards)
    steps = features.shape[-2]
    if label_model.label != "regret" or steps == 1:
        return score
    goal_now = goals[..., 0, :] if goals.ndim == features.ndim else goals
    norm = np.asarray(norm_weight, dtype=np.float64)
    norm_now = norm[..., 0] if norm.ndim == features.ndim - 1 else norm
    gain = entry.value(features[..., -1, :], goal_now, norm_now, cols, steps) - entry.value(
        features[..., 0, :], goal_now, norm_now, cols, steps
    )
    return score + gain / (entry.scale * steps)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class Labels(NamedTuple):
    """Answers to P pairs: the label, the noise-free label, and P(A) with all noise."""

    label: np.ndarray
    true_label: np.ndarray
    answer_prob: np.ndarray


#: what a user judges a segment by: its (myopic) partial return, or its regret (Knox et al.).
LABEL_KINDS: tuple[str, ...] = ("partial-return", "regret")


@dataclass(frozen=True)
class LabelModel:
    """How a user turns two segment returns into an answer (see the module docstring)."""

    # Each knob's ``help`` is its line in ``robopref collect --help`` (as an override).
    beta: float = field(
        default=20.0,
        metadata={"help": "rationality beta (inf: no noise)", "infinite_ok": True},
    )
    gamma: float = field(default=1.0, metadata={"help": "myopia gamma in (0, 1] (1: none)"})
    mistake: float = field(default=0.01, metadata={"help": "mistake rate in [0, 0.5]"})
    skip_threshold: float | None = field(
        default=None, metadata={"help": "skip pairs whose returns are both below this"}
    )
    equal_threshold: float = field(
        default=0.01, metadata={"help": "answer a tie when the returns differ by at most this"}
    )
    soft: bool = field(default=False, metadata={"help": "answer P(A) instead of 0/1"})
    position_bias: float = field(
        default=0.0, metadata={"help": "chance of picking the first-shown segment, in [0, 1)"}
    )
    both_orders: bool = field(
        default=False, metadata={"help": "ask twice, in both orders, and average"}
    )
    label: str = field(
        default="partial-return",
        metadata={"help": "what a segment is judged by: partial-return or regret"},
    )

    def __post_init__(self) -> None:
        checks = [
            (self.beta > 0, "beta must be > 0, not NaN (inf: perfectly rational)"),
            (0.0 < self.gamma <= 1.0, "gamma (myopia) must lie in (0, 1]; 1 means none"),
            (0.0 <= self.mistake <= 0.5, "mistake must lie in [0, 0.5]"),
            (
                0.0 <= self.equal_threshold < np.inf,
                "equal_threshold must be a finite number >= 0",
            ),
            (0.0 <= self.position_bias < 1.0, "position_bias must lie in [0, 1)"),
            (
                self.skip_threshold is None or np.isfinite(self.skip_threshold),
                "skip_threshold must be a finite number or None (no skips)",
            ),
            (self.label in LABEL_KINDS, f"label must be one of {', '.join(LABEL_KINDS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{message}; got {self}")

    def weights(self, steps: int) -> np.ndarray:
        """Myopic step weights ``gamma ** (T - 1 - t)``, normalised to sum to one."""
        w = self.gamma ** np.arange(steps - 1, -1, -1, dtype=np.float64)
        return w / w.sum()

    def segment_return(self, rewards: np.ndarray) -> np.ndarray:
        """Myopia-weighted mean over the last axis (steps) of per-step rewards."""
        return rewards @ self.weights(rewards.shape[-1])

    def true_label(self, ret_a: np.ndarray, ret_b: np.ndarray) -> np.ndarray:
        """The noise-free answer: 1 (A), 0 (B) or 0.5 (within the equal threshold)."""
        diff = np.asarray(ret_a, dtype=np.float64) - ret_b
        return np.where(np.abs(diff) <= self.equal_threshold, 0.5, (diff > 0).astype(np.float64))

    def _masks(self, ret_a: np.ndarray, ret_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ret_a, ret_b = np.asarray(ret_a, dtype=np.float64), np.asarray(ret_b, dtype=np.float64)
        if self.skip_threshold is None:
            skipped = np.zeros(np.broadcast_shapes(ret_a.shape, ret_b.shape), dtype=bool)
        else:
            skipped = np.maximum(ret_a, ret_b) < self.skip_threshold
        tie = ~skipped & (np.abs(ret_a - ret_b) <= self.equal_threshold)
        return skipped, tie

    def _content_prob(self, ret_a: np.ndarray, ret_b: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", over="ignore"):
            p = _sigmoid(self.beta * (np.asarray(ret_a, dtype=np.float64) - ret_b))
        p = np.nan_to_num(p, nan=0.5)
        return self.mistake + (1.0 - 2.0 * self.mistake) * p

    def answer_prob(self, ret_a: np.ndarray, ret_b: np.ndarray) -> np.ndarray:
        """Expected label with all noise, A shown first: P(A); 0.5 for ties, NaN for skips."""
        skipped, tie = self._masks(ret_a, ret_b)
        p, b = self._content_prob(ret_a, ret_b), self.position_bias
        prob = b / 2.0 + (1.0 - b) * p if self.both_orders else b + (1.0 - b) * p
        return np.where(skipped, np.nan, np.where(tie, 0.5, prob))

    def sample(self, ret_a: np.ndarray, ret_b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sampled labels (A shown first); uses exactly two uniforms per pair."""
        skipped, tie = self._masks(ret_a, ret_b)
        p, b = self._content_prob(ret_a, ret_b), self.position_bias
        u = rng.random((2, *p.shape))
        if self.soft:
            label = self.answer_prob(ret_a, ret_b)
        elif self.both_orders:
            first = (u[0] < b + (1.0 - b) * p).astype(np.float64)  # A shown first
            second = (u[1] < (1.0 - b) * p).astype(np.float64)  # B shown first
            label = 0.5 * (first + second)
        else:
            label = (u[0] < b + (1.0 - b) * p).astype(np.float64)
        return np.where(skipped, np.nan, np.where(tie, 0.5, label))

    def labels(self, ret_a: np.ndarray, ret_b: np.ndarray, rng: np.random.Generator) -> Labels:
        """Sampled label, noise-free label and answer probability of pairs of returns."""
        return Labels(
            self.sample(ret_a, ret_b, rng).astype(np.float32),
            self.true_label(ret_a, ret_b).astype(np.float32),
            self.answer_prob(ret_a, ret_b).astype(np.float32),
        )


#: the documented default labelling noise (see the module docstring).
DEFAULT_LABEL_MODEL = LabelModel()
#: the names of the noise knobs, as population files and the CLI spell them.
NOISE_KEYS: tuple[str, ...] = tuple(LabelModel.__dataclass_fields__)


@dataclass(frozen=True)
class SyntheticUser:
    """A simulated annotator: a hidden goal, shared norms and a labelling model.

    ``goal`` is a float vector of the task's goal size (a table point (x, y) for the plate;
    ``[zone index]`` for BlockSort); ``group`` is the population mode it came from (-1 if
    none). ``feature_names`` are the env's, in order.
    """

    env_id: str
    feature_names: tuple[str, ...]
    goal: np.ndarray
    label_model: LabelModel = field(default_factory=LabelModel)
    norm_weight: float = 1.0
    group: int = -1

    def __post_init__(self) -> None:
        entry, _ = task_reward(self.env_id, self.feature_names)
        goal = np.asarray(self.goal, dtype=np.float64).reshape(-1)
        if goal.shape != (entry.goal_dim,):
            raise ValueError(
                f"goal {self.goal!r} of a {self.env_id} user must have {entry.goal_dim} "
                "number(s): a table point (x, y) for the plate, [zone index] for BlockSort, "
                "an arrangement of 6 for TableSetting"
            )
        object.__setattr__(self, "goal", goal)

    def reward(self, features: np.ndarray) -> np.ndarray:
        """Normalised per-step reward of features shaped ``(..., F)``; returns ``(...)``."""
        entry, cols = task_reward(self.env_id, self.feature_names)
        raw = entry.fn(np.asarray(features), self.goal, self.norm_weight, cols)
        return (raw - entry.offset) / entry.scale

    def segment_return(self, features: np.ndarray) -> np.ndarray:
        """What this user judges segments ``(..., T, F)`` by (:func:`segment_scores`): the
        normalised, myopia-weighted mean reward, or with regret labels its regret."""
        return segment_scores(
            self.env_id,
            self.feature_names,
            features,
            self.goal,
            self.norm_weight,
            self.label_model,
        )

    def answer_prob(self, feat_a: np.ndarray, feat_b: np.ndarray) -> np.ndarray:
        """P(A) with all noise for segments ``(..., T, F)`` (0.5 tie, NaN skip)."""
        return self.label_model.answer_prob(
            self.segment_return(feat_a), self.segment_return(feat_b)
        )

    def true_label(self, feat_a: np.ndarray, feat_b: np.ndarray) -> np.ndarray:
        """Noise-free answer (1, 0 or 0.5) for segments ``(..., T, F)``."""
        return self.label_model.true_label(self.segment_return(feat_a), self.segment_return(feat_b))

    def answer(self, pair: Any, rng: np.random.Generator) -> float:
        """Answer one query: ``pair`` is ``(feat_a, feat_b)`` or has ``feat_a``/``feat_b``.

        Returns 1.0 (A), 0.0 (B), 0.5 (tie or, with ``both_orders``, two answers that
        disagree), a probability (``soft``) or NaN (skipped).
        """
        feat_a, feat_b = (pair.feat_a, pair.feat_b) if hasattr(pair, "feat_a") else pair
        ret_a = self.segment_return(np.asarray(feat_a))
        ret_b = self.segment_return(np.asarray(feat_b))
        return float(self.label_model.sample(ret_a, ret_b, rng))

    def answer_question(
        self, question: QuestionType, items: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Answer a question of any type (:mod:`robopref.users.question_types`) about ``items``:
        segments ``(items, T, F)`` or end states ``(items, F)`` (one-state segments), by the
        type's own answer model at this user's rationality ``beta`` on the user's returns."""
        items = np.asarray(items, dtype=np.float64)
        if items.ndim == 2:
            items = items[:, None, :]
        if items.ndim != 3 or len(items) != question.items:
            raise ValueError(
                f"a {question.kind} question shows {question.items} item(s): give segments "
                f"({question.items}, T, F) or end states ({question.items}, F), not "
                f"{items.shape}"
            )
        return question.sample(self.segment_return(items), self.label_model.beta, rng)


def label_pairs(
    users: Sequence[SyntheticUser],
    user_index: np.ndarray,
    feat_a: np.ndarray,
    feat_b: np.ndarray,
    rng: np.random.Generator,
) -> Labels:
    """Label P pairs ``feat_a``, ``feat_b`` (P, T, F); pair i is asked to ``users[user_index[i]]``.

    Vectorized: the rewards of all pairs are computed in one pass per distinct labelling
    model (usually one), so collection labels hundreds of thousands of pairs per second.
    """
    user_index = np.asarray(user_index, dtype=np.int64)
    if feat_a.shape != feat_b.shape or feat_a.ndim != 3 or len(user_index) != len(feat_a):
        raise ValueError(
            f"feat_a {feat_a.shape} and feat_b {feat_b.shape} must both be (P, T, F) with "
            f"P = len(user_index) = {len(user_index)}"
        )
    if len(users) == 0:
        raise ValueError("label_pairs needs at least one user")
    first = users[0]
    if any(u.env_id != first.env_id or u.feature_names != first.feature_names for u in users):
        raise ValueError("all users of one label_pairs call must judge the same env's features")
    goals = np.stack([u.goal for u in users])[user_index][:, None, :]
    norm = np.array([u.norm_weight for u in users])[user_index][:, None]
    out = Labels(*(np.empty(len(user_index), dtype=np.float32) for _ in range(3)))
    distinct = list(dict.fromkeys(u.label_model for u in users))
    model_of_user = np.array([distinct.index(u.label_model) for u in users])
    model_of_pair = model_of_user[user_index]
    for m, model in enumerate(distinct):
        which = np.flatnonzero(model_of_pair == m)
        ret_a, ret_b = (
            segment_scores(
                first.env_id, first.feature_names, f[which], goals[which], norm[which], model
            )
            for f in (feat_a, feat_b)
        )
        for target, values in zip(out, model.labels(ret_a, ret_b, rng), strict=True):
            target[which] = values
    return out


def reward_moments(
    env_id: str, feature_names: Sequence[str], features: np.ndarray, goals: np.ndarray
) -> tuple[float, float]:
    """Mean and standard deviation of the *raw* per-step reward of states ``features``
    (N, F) judged by users with ``goals`` (K, G) and ``norm_weight`` 1: how the
    normalisation constants of each task's ``TaskReward`` are chosen."""
    entry, cols = task_reward(env_id, feature_names)
    goals = np.asarray(goals, dtype=np.float64).reshape(len(goals), 1, -1)
    raw = entry.fn(np.asarray(features)[None], goals, 1.0, cols)
    return float(raw.mean()), float(raw.std())
