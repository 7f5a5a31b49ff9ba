"""Collecting answers to questions of any type, stored as the pairs they imply.

``robopref collect --question ranking:4`` asks each user ``--queries-per-user`` questions,
each about ``k`` distinct items drawn uniformly from the candidate pool's segments (both
sides of its pairs; with ``--question-items end-states`` each segment's last state alone),
answered by the user's own answer model of the type
(:meth:`robopref.users.synthetic.SyntheticUser.answer_question`).

Each answer is stored as the pairs it implies (*rank breaking*,
:func:`robopref.users.question_types.answer_as_pairs`: a ranking of k, every earlier item over
every later one; best of k, the chosen one over each other), which share a ``question`` id,
so that every reward model, and VPL's encoder, learns from any type unchanged. Full
breaking of a Plackett-Luce ranking is a consistent estimator of its utilities (Azari
Soufiani, Parkes and Xia, "Computing parametric ranking models via rank-breaking", ICML
2014), though its pairs are not independent: a model's held-out likelihood over them counts
one ranking as its k (k - 1) / 2 pairs. Each pair's sides are shown in random order.

**Ratings** (``--question rating``: one item at a time on a 1..7 scale) compare with
nothing on their own; :func:`rated_dataset` ranks each user's rated items by their ratings
and stores the ranking as the pairs between items of different ratings (the higher-rated
one preferred), at most :data:`RATED_PAIRS_PER_ITEM` per rated item, drawn uniformly (a
user's 48 ratings imply up to 1,128 pairs; 6 per item stores as many as 48 rankings of four
do). This is the ranking Stable Alignment (Liu et al., 2023) trains on contrastively: the
rated responses of a simulated society ordered by their ratings.

The evaluation-only fields are those of the pair: ``true_label`` the noise-free order of
its two items, ``answer_prob`` the probability that a pair question about them would have
been answered A (the pairwise Bayes ceiling), ``contested`` as for any pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robopref.data.dataset import PreferenceDataset, SegmentPairs
from robopref.data.queries import QueryPool
from robopref.reward.typed_asking import QuestionMenu
from robopref.users.population import Population
from robopref.users.question_types import QuestionType, answer_as_pairs
from robopref.users.synthetic import Labels, SyntheticUser


def pool_items(pool: QueryPool, items: str) -> dict[str, np.ndarray]:
    """Every segment of ``pool`` (both sides) as items: ``obs``, ``feat``, ``act``
    (``items="end-states"``: each segment's last state only)."""
    out = {
        name: np.concatenate([getattr(pool, f"{name}_a"), getattr(pool, f"{name}_b")])
        for name in ("obs", "feat", "act")
    }
    if items == "end-states":
        out = {name: value[:, -1:] for name, value in out.items()}
    return out


#: a user's ratings are stored as at most this many pairs per rated item (module docstring)
RATED_PAIRS_PER_ITEM = 6


def typed_dataset(
    env_id: str,
    pool: QueryPool,
    population: Population,
    users: Sequence[SyntheticUser],
    menu: QuestionMenu,
    per_user: int,
    rng: np.random.Generator,
    meta: dict[str, Any],
) -> PreferenceDataset:
    """Ask each user ``per_user`` questions of ``menu`` (its types in turn) about items of
    ``pool``; the dataset of the pairs the answers imply (module docstring)."""
    items = pool_items(pool, menu.items)
    n_items = len(items["obs"])
    left, right, labels, user_of, question_of, asked = [], [], [], [], [], []
    question = 0
    for u, user in enumerate(users):
        for q in range(per_user):
            kind = menu.types[q % len(menu.types)]
            rows = rng.choice(n_items, size=kind.items, replace=False)
            answer = user.answer_question(kind, items["feat"][rows], rng)
            answer = answer.tolist() if np.ndim(answer) else answer.item()
            for better, worse, label in answer_as_pairs(kind, answer):
                a, b = rows[better], rows[worse]
                if rng.random() < 0.5:  # show the sides in random order
                    a, b, label = b, a, 1.0 - label
                left.append(a)
                right.append(b)
                labels.append(label)
                user_of.append(u)
                question_of.append(question)
            asked.append(rows.tolist())
            question += 1
    meta = {**meta, "question": menu.describe(), "question_items": asked}
    return _stored(
        env_id, pool, population, users, items, (left, right, labels, user_of), question_of, meta
    )


def rated_dataset(
    env_id: str,
    pool: QueryPool,
    population: Population,
    users: Sequence[SyntheticUser],
    rating: QuestionType,
    per_user: int,
    item_kind: str,
    rng: np.random.Generator,
    meta: dict[str, Any],
) -> PreferenceDataset:
    """Each user rates ``per_user`` distinct items of ``pool``; each user's ratings stored as
    the ranked pairs they imply (module docstring), each pair its own question."""
    items = pool_items(pool, item_kind)
    left, right, labels, user_of, rated = [], [], [], [], []
    for u, user in enumerate(users):
        rows = rng.choice(len(items["obs"]), size=per_user, replace=False)
        ratings = np.array([user.answer_question(rating, items["feat"][[row]], rng).item()
                            for row in rows])  # fmt: skip
        first, second = np.triu_indices(per_user, 1)
        differ = np.flatnonzero(ratings[first] != ratings[second])
        kept = rng.permutation(differ)[: RATED_PAIRS_PER_ITEM * per_user]
        for i, j in zip(first[kept], second[kept], strict=True):
            a, b = (i, j) if rng.random() < 0.5 else (j, i)  # sides in random order
            left.append(rows[a])
            right.append(rows[b])
            labels.append(float(ratings[a] > ratings[b]))
            user_of.append(u)
        rated.append({"items": rows.tolist(), "ratings": ratings.tolist()})
    described = f"rating-{rating.levels} of {item_kind}, ranked"
    meta = {**meta, "question": described, "ratings": rated}
    return _stored(env_id, pool, population, users, items, (left, right, labels, user_of),
                   np.arange(len(left)), meta)  # fmt: skip


def _stored(
    env_id: str,
    pool: QueryPool,
    population: Population,
    users: Sequence[SyntheticUser],
    items: dict[str, np.ndarray],
    answered: tuple[list[Any], list[Any], list[float], list[int]],
    question_of: Sequence[int] | np.ndarray,
    meta: dict[str, Any],
) -> PreferenceDataset:
    """The dataset of answered pairs ``(left item, right item, label, user)`` of ``items``."""
    left, right, labels, user_of = answered
    left_i, right_i = np.array(left, np.int64), np.array(right, np.int64)
    user_index = np.array(user_of, np.int64)
    feat_a, feat_b = items["feat"][left_i], items["feat"][right_i]
    true_label = np.empty(len(left_i), np.float32)
    answer_prob = np.empty(len(left_i), np.float32)
    for u, user in enumerate(users):
        which = user_index == u
        ret_a, ret_b = user.segment_return(feat_a[which]), user.segment_return(feat_b[which])
        true_label[which] = user.label_model.true_label(ret_a, ret_b)
        answer_prob[which] = user.label_model.answer_prob(ret_a, ret_b)
    segments = SegmentPairs(
        items["obs"][left_i], items["obs"][right_i], feat_a, feat_b,
        items["act"][left_i], items["act"][right_i],
    )  # fmt: skip
    return PreferenceDataset.from_answers(
        segments, Labels(np.array(labels, np.float32), true_label, answer_prob), user_index,
        env_id=env_id, feature_names=pool.feature_names, users=users,
        contested=population.contested(feat_a, feat_b),
        question=np.array(question_of, np.int64),
        meta=meta,
    )  # fmt: skip
