"""Preference queries: pairs of trajectory segments cut from behaviour rollouts.

1. :func:`robopref.data.rollouts.collect_rollouts` runs a behaviour mix (``BehaviourMix``) on
   the raw env: the scripted expert aimed at goals drawn uniformly from the goal space with Gaussian
   action noise, the uniformly random policy, and any ``obs -> action`` callables (for an
   SB3 model: ``lambda obs: model.predict(obs, deterministic=False)[0]``). Every episode
   keeps its L + 1 states (reset state included).
2. :func:`build_query_pool` cuts them into segments of T consecutive states (T = 1: single
   states, as in the VPL code) and draws candidate pairs so that informative comparisons
   are common: segments that contain a release (the set-down) are drawn ``release_boost``
   times as often, and a pair is redrawn when both segments show an object that has not
   moved from where the episode started (an idle arm) or when the two segments' object
   trajectories are nearly equal (mean distance of object position, plus 5 cm per unit of
   ``held`` difference, below ``min_gap``). A ``near_share`` of the pairs are *near pairs*:
   the first segment, from an expert episode, ends with the object low over the table
   (below ``LOW_HEIGHT``: set down where the expert aimed, or about to be) and the second
   with the object within ``NEAR_RADIUS`` of there: uniform pairs rarely compare two ways
   of being at one spot (set down or still held, gently or dropped).
3. The result is a :class:`QueryPool` of ``obs_a/obs_b/feat_a/feat_b`` arrays shared by all
   users: collection draws each user's queries from it, and active querying can score its
   candidates for a new user (:meth:`QueryPool.draw`, :meth:`QueryPool.subset`).

The pool knows nothing of users; whether users would disagree on a pair (contested) is
:meth:`robopref.users.population.Population.contested`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from robopref.data.rollouts import SOURCES, Rollouts

#: a near pair's segments end with the object at most this far apart (m, horizontally).
NEAR_RADIUS = 0.05
#: a near pair's first segment ends with the object this low (m): where it is set down.
LOW_HEIGHT = 0.02


class Query(NamedTuple):
    """One pair of segments: what :meth:`robopref.users.synthetic.SyntheticUser.answer` takes."""

    obs_a: np.ndarray
    obs_b: np.ndarray
    feat_a: np.ndarray
    feat_b: np.ndarray


@dataclass
class QueryPool:
    """N candidate pairs of T-step segments: ``obs_a/obs_b`` (N, T, O), ``feat_a/feat_b``
    (N, T, F), where each segment came from (``origin``: (N, 2, 2) of episode, start), and
    the action taken in each of their states (``act_a/act_b``: (N, T, A), NaN where none:
    an episode's last state, or a segment whose actions were never recorded)."""

    env_id: str
    feature_names: tuple[str, ...]
    obs_a: np.ndarray
    obs_b: np.ndarray
    feat_a: np.ndarray
    feat_b: np.ndarray
    origin: np.ndarray
    act_a: np.ndarray
    act_b: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.obs_a.shape[0])

    @property
    def segment_length(self) -> int:
        """Steps per segment T."""
        return int(self.obs_a.shape[1])

    def draw(
        self, n: int, rng: np.random.Generator, exclude: np.ndarray | None = None
    ) -> np.ndarray:
        """``n`` distinct pair indices drawn uniformly, none of them in ``exclude``."""
        allowed = np.setdiff1d(np.arange(len(self)), exclude) if exclude is not None else None
        available = len(self) if allowed is None else len(allowed)
        if n > available:
            raise ValueError(
                f"asked for {n} queries but the pool has only {available} left: "
                "build a larger pool (more pairs or episodes)"
            )
        picked = rng.choice(available, size=n, replace=False)
        return picked if allowed is None else allowed[picked]

    def pair(self, i: int) -> Query:
        """Pair ``i`` as a :class:`Query` (``(T, O)`` and ``(T, F)`` arrays)."""
        return Query(self.obs_a[i], self.obs_b[i], self.feat_a[i], self.feat_b[i])

    def subset(self, index: np.ndarray) -> QueryPool:
        """The pairs at ``index``, in that order."""
        return QueryPool(
            self.env_id,
            self.feature_names,
            self.obs_a[index],
            self.obs_b[index],
            self.feat_a[index],
            self.feat_b[index],
            self.origin[index],
            self.act_a[index],
            self.act_b[index],
            dict(self.meta),
        )


def object_columns(feature_names: Sequence[str]) -> list[tuple[int, int, int, int]]:
    """The ``(x, y, height, held)`` feature columns of each object a task moves: the bare
    names for one object, ``<object>_x, ...`` for each of several (TableSetting)."""
    cols = {name: i for i, name in enumerate(feature_names)}
    quantities = ("x", "y", "height", "held")
    if all(q in cols for q in quantities):
        return [tuple(cols[q] for q in quantities)]  # type: ignore[list-item]
    prefixes = [name[: -len("_x")] for name in feature_names if name.endswith("_x")]
    found = [
        tuple(cols[f"{p}_{q}"] for q in quantities)
        for p in prefixes
        if all(f"{p}_{q}" in cols for q in quantities)
    ]
    if not found:
        raise ValueError(
            f"features {tuple(feature_names)} lack x, y, height and held (or <object>_x, ... "
            "for several objects): needed for queries"
        )
    return found  # type: ignore[return-value]


def _segment_stats(rollouts: Rollouts, segment: int) -> tuple[np.ndarray, ...]:
    """Per (episode, start): object xyz trajectory (every object's, one after the other:
    ``3 K`` rows for K objects; the first object's xy first), held, idle and release flags."""
    objects = object_columns(rollouts.feature_names)
    xyz = [c for x, y, h, _ in objects for c in (x, y, h)]
    pos = rollouts.feat[..., xyz].astype(np.float64)
    held_each = rollouts.feat[..., [o[3] for o in objects]].astype(np.float64)
    held = held_each.max(-1)
    moved = np.linalg.norm(pos - pos[:, :1], axis=-1) > 0.01
    active = np.logical_or.accumulate(moved | (held > 0.5), axis=1)  # moved or held so far
    released = np.zeros_like(held, dtype=bool)
    released[:, 1:] = ((held_each[:, :-1] > 0.5) & (held_each[:, 1:] < 0.5)).any(-1)
    starts = rollouts.feat.shape[1] - segment + 1
    window = np.lib.stride_tricks.sliding_window_view
    seg_pos = window(pos, segment, axis=1)[:, :starts]  # (E, S, 3, T)
    seg_held = window(held, segment, axis=1)[:, :starts]  # (E, S, T)
    idle = ~window(active, segment, axis=1)[:, :starts].any(-1)
    has_release = window(released, segment, axis=1)[:, :starts].any(-1)
    return seg_pos, seg_held, idle, has_release


def _near_partners(
    first: np.ndarray, seg_pos: np.ndarray, rng: np.random.Generator, tries: int = 256
) -> np.ndarray:
    """For each flat segment index in ``first``, a segment whose object ends within
    ``NEAR_RADIUS`` of where it ends (tried among ``tries`` random ones; itself if none)."""
    end_xy = seg_pos[:, :, :2, -1].reshape(-1, 2)  # (E * S, 2)
    partners = first.copy()
    for i, a in enumerate(first):
        cand = rng.integers(len(end_xy), size=tries)
        close = np.flatnonzero(np.hypot(*(end_xy[cand] - end_xy[a]).T) < NEAR_RADIUS)
        close = close[cand[close] != a]
        if len(close):
            partners[i] = cand[close[0]]
    return partners


def build_query_pool(
    rollouts: Rollouts,
    n_pairs: int,
    segment: int,
    rng: np.random.Generator,
    min_gap: float = 0.03,
    release_boost: float = 4.0,
    near_share: float = 0.0,
    first_episodes: np.ndarray | None = None,
) -> QueryPool:
    """Draw ``n_pairs`` informative candidate pairs of ``segment``-step segments (module doc).

    ``first_episodes``: every pair's first segment comes from these episodes (the loop's
    queries about what the policy did for one user), and so do its near pairs' first
    segments; the second segment comes from any episode.
    """
    if not 0.0 <= near_share <= 1.0:
        raise ValueError(f"near_share={near_share} is a share of the pairs: use [0, 1]")
    length = rollouts.feat.shape[1]
    if not 1 <= segment <= length:
        raise ValueError(f"segment={segment} must lie in [1, {length}] (the episode's states)")
    if n_pairs < 1:
        raise ValueError(f"n_pairs={n_pairs} must be >= 1")
    seg_pos, seg_held, idle, has_release = _segment_stats(rollouts, segment)
    n_starts = idle.shape[1]
    if first_episodes is None:
        eligible = rollouts.source == SOURCES.index("expert")
    else:
        eligible = np.zeros(rollouts.n_episodes, dtype=bool)
        eligible[np.asarray(first_episodes, dtype=np.int64)] = True
    low_end = np.flatnonzero((eligible[:, None] & (seg_pos[:, :, 2, -1] < LOW_HEIGHT)).ravel())
    weight = np.where(has_release, release_boost, 1.0).ravel()
    weight /= weight.sum()
    first_weight = weight
    if first_episodes is not None:
        first_weight = np.where(np.repeat(eligible, n_starts), weight, 0.0)
        first_weight /= first_weight.sum()
    chosen: list[np.ndarray] = []
    found, tries = 0, 0
    while found < n_pairs:
        tries += 1
        if tries > 50:
            raise RuntimeError(
                f"found only {found} of {n_pairs} informative pairs in 50 rounds: collect more "
                f"or more varied episodes, or lower min_gap={min_gap}"
            )
        cand = rng.choice(weight.size, size=(2 * (n_pairs - found) + 64, 2), p=weight)
        if first_episodes is not None:
            cand[:, 0] = rng.choice(weight.size, size=len(cand), p=first_weight)
        if near_share > 0.0:
            near = rng.random(len(cand)) < near_share
            if low_end.size:
                cand[near, 0] = rng.choice(low_end, size=int(near.sum()))
            cand[near, 1] = _near_partners(cand[near, 0], seg_pos, rng)
        ea, sa = np.divmod(cand[:, 0], n_starts)
        eb, sb = np.divmod(cand[:, 1], n_starts)
        gap = np.linalg.norm(seg_pos[ea, sa] - seg_pos[eb, sb], axis=-2).mean(-1)
        gap += 0.05 * np.abs(seg_held[ea, sa] - seg_held[eb, sb]).mean(-1)
        keep = (gap >= min_gap) & ~(idle[ea, sa] & idle[eb, sb])
        kept = cand[keep][: n_pairs - found]
        chosen.append(kept)
        found += len(kept)
    pairs = np.concatenate(chosen)
    ep, st = np.divmod(pairs, n_starts)  # (N, 2) each
    steps = st[..., None] + np.arange(segment)  # (N, 2, T)
    obs = rollouts.obs[ep[..., None], steps]
    feat = rollouts.feat[ep[..., None], steps]
    act = rollouts.act[ep[..., None], steps]
    return QueryPool(
        rollouts.env_id,
        rollouts.feature_names,
        obs[:, 0],
        obs[:, 1],
        feat[:, 0],
        feat[:, 1],
        np.stack([ep, st], axis=-1).astype(np.int64),
        act[:, 0],
        act[:, 1],
        {
            "min_gap": min_gap,
            "release_boost": release_boost,
            "near_share": near_share,
            "episodes": rollouts.n_episodes,
        },
    )
