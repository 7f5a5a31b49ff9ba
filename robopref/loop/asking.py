"""What the loop asks each user: pairs about what the current policy does for that user.

Round 0 asks about goal-agnostic behaviour (:data:`GOAL_AGNOSTIC`: scripted experts aimed
at goals drawn uniformly from the env's goal space, with their noise, hesitant, careless
and missed variants, and the random policy). Every later round first rolls out the current
policy for each training user under that user's posterior mean z
(:func:`robopref.policies.rollout.policy_rollouts`)
and, for each user, three *proposals* (:func:`proposal_rollouts`): the scripted expert
setting the object down where the policy's greedy episode took it for that user, again a few
centimetres away in a random direction, and holding it low (a centimetre or two above the
table) at the policy's spot. A policy that carries the object to the right spot but hovers
there is then asked "set down here, or held here?" and "held lower here, or held as you
did?", and one that stops short or overshoots "here, or a little further that way?": the
comparisons an online learner climbs by. The spot is the policy's; no user's goal is read.
Then it asks the two *fixed questions* (:func:`ending_pair`: the set-down proposal at the
policy's spot against the policy's own greedy episode's end, and the held-low proposal
against it; BALD never asks them, since every user answers them alike, and they are what
gives the learned reward a slope from hovering down to the table), draws candidate pairs
whose first segment comes from that user's own episodes and whose second comes from any
episode of the round (other users' rollouts, the goal-agnostic ones;
:func:`user_candidates`), and asks the ``m`` most informative ones, one at a time
(:func:`ask_active`: BALD on the user's current posterior, updated after every answer, as
:func:`robopref.reward.active.infer_user` does for a new user) for a share of them and the
rest at random (:func:`ask_mixed`), or all at random (:func:`ask_random`, for models without
a latent). Nothing here reads a user's goal or group: users are
:class:`robopref.users.hidden.SealedUser` and give answers only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from robopref.data.queries import QueryPool, build_query_pool, object_columns
from robopref.data.rollouts import (
    MISS_TABLE_LIMIT,
    SOURCES,
    BehaviourMix,
    Rollouts,
    collect_rollouts,
    join_rollouts,
)
from robopref.envs import sample_goal
from robopref.policies.rollout import task_env
from robopref.reward.active import BALD_SAMPLES, answers_posterior, bald_scores
from robopref.reward.base import RewardModel
from robopref.reward.nets import as_tensor
from robopref.tasks import scripted_policy, task_spec
from robopref.users.hidden import SealedUser

#: round 0's behaviour, for every task and population: no goal of any user is used.
GOAL_AGNOSTIC = BehaviourMix(
    expert_share=0.8, random_share=0.2, hesitant_share=0.5, careless_share=0.2,
    missed_share=0.2, population_goal_share=0.0,
)  # fmt: skip
#: share of candidate pairs that compare two ways of being at one spot (queries module).
NEAR_SHARE = 0.3
#: the proposal expert's action noise std is drawn in [0, this] (small: it must set down there)
PROPOSAL_NOISE = 0.1
#: the second proposal sets the object down this far from the policy's spot (m)
OFFSET_MIN, OFFSET_MAX = 0.03, 0.10
#: the third holds the object's bottom this high above the table at the policy's spot (m):
#: above the set-down primitive's resting band, below where hovering policies stall (3-6 cm)
HOLD_LOW_MIN, HOLD_LOW_MAX = 0.01, 0.025
#: proposals per user and round: set down at its spot, set down offset from it, held low at it
PROPOSALS = 3
#: each user's proposals, by position among them
AT_SPOT, OFFSET, HELD_LOW = range(PROPOSALS)
#: the proposals each user is asked about against the policy's greedy episode, every round
FIXED_QUESTIONS = (AT_SPOT, HELD_LOW)


def end_points(rollouts: Rollouts) -> np.ndarray:
    """Where each episode left the object on the table plane: ``(E, 2)`` (x, y); for several
    objects the arrangement it left, ``(E, 2 K)``: the first object's (x, y), then each
    other's offset from it (TableSetting's goal layout)."""
    objects = object_columns(rollouts.feature_names)
    ends = np.stack([rollouts.feat[:, -1][:, [x, y]] for x, y, _, _ in objects], axis=1)
    ends = ends.astype(np.float64)
    ends[:, 1:] -= ends[:, :1]
    return ends.reshape(len(ends), -1)


def fixed_questions(env_id: str) -> tuple[int, ...]:
    """The fixed questions of ``env_id``'s rounds: :data:`FIXED_QUESTIONS` for one object
    set down by the policy itself; none where the task's spec aims its own proposals (an
    arrangement: the place interface sets every object down, so "set down or held?" never
    arises)."""
    return FIXED_QUESTIONS if task_spec(env_id).proposal_aims is None else ()


def proposal_aims(
    env_id: str, points: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """:data:`PROPOSALS` aims per point ``(U, 2)`` -> ``(PROPOSALS * U, 2)`` (user u's at rows
    ``PROPOSALS * u + AT_SPOT, OFFSET, HELD_LOW``): the point itself, a point
    ``OFFSET_MIN..OFFSET_MAX`` m from it in a random direction, and the point again; with the
    height each is held at ``(PROPOSALS * U,)`` (NaN: set down; the held-low one's drawn in
    ``HOLD_LOW_MIN..HOLD_LOW_MAX``).

    A task whose spec has ``proposal_aims`` (TableSetting's arrangements) aims its own.
    """
    own = task_spec(env_id).proposal_aims
    if own is not None:
        return own(points, rng, PROPOSALS, OFFSET_MIN, OFFSET_MAX)
    angle = rng.uniform(0.0, 2.0 * np.pi, len(points))
    distance = rng.uniform(OFFSET_MIN, OFFSET_MAX, len(points))
    offset = points + distance[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    heights = np.full((len(points), PROPOSALS), np.nan)
    heights[:, HELD_LOW] = rng.uniform(HOLD_LOW_MIN, HOLD_LOW_MAX, len(points))
    aims = np.stack([points, offset, points], axis=1).reshape(-1, 2)
    return aims, heights.reshape(-1)


def proposal_rollouts(
    env_id: str,
    points: np.ndarray,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
    hold_heights: np.ndarray | None = None,
) -> Rollouts:
    """One scripted episode per row of ``points`` ``(N, 2)``: the expert carrying the object
    to that table point (clipped to the hand's reach) and setting it down there, or, where
    ``hold_heights`` ``(N,)`` is not NaN, holding it that high above the table there."""
    env = task_env(env_id, False, **(env_kwargs or {})).unwrapped
    rng = np.random.default_rng(seed)
    aims = np.clip(points, -MISS_TABLE_LIMIT, MISS_TABLE_LIMIT)  # offsets too, for arrangements
    heights = np.full(len(aims), np.nan) if hold_heights is None else np.asarray(hold_heights)
    parts = []
    mix = BehaviourMix(
        expert_share=0.0, random_share=0.0, policy_share=1.0, careless_share=0.0,
        population_goal_share=0.0,
    )  # fmt: skip
    # The place interface puts an object where it is told: noise there would only move the
    # spot (in units of a place action: 20-30 cm), which the offset proposal does on purpose.
    precise = env.action_space.shape != (4,)
    for aim, height in zip(aims, heights, strict=True):
        noise = float(rng.uniform(0, PROPOSAL_NOISE))
        expert = scripted_policy(
            env, sample_goal(env.goal_space, rng), noise=0.0 if precise else noise,
            seed=int(rng.integers(2**31)), aim=aim,
            hold_height=None if np.isnan(height) else float(height),
        )  # fmt: skip
        parts.append(collect_rollouts(env_id, 1, rng, mix, [expert], env_kwargs=env_kwargs))
    env.close()
    joined = join_rollouts(parts)
    joined.source[:] = SOURCES.index("expert")
    return joined


def ending_pair(rollouts: Rollouts, first: int, second: int, segment: int) -> QueryPool:
    """One pair: the last ``segment`` states of episode ``first`` against those of
    ``second`` (the loop's fixed questions: a proposal at the policy's spot, set down or held
    low, against the policy's own greedy episode, which may still hold the object higher)."""
    pick = np.array([first, second])
    obs, feat = rollouts.obs[pick, -segment:], rollouts.feat[pick, -segment:]
    act = rollouts.act[pick, -segment:]
    start = rollouts.obs.shape[1] - segment
    origin = np.array([[[first, start], [second, start]]], dtype=np.int64)
    return QueryPool(
        rollouts.env_id, rollouts.feature_names, obs[:1], obs[1:], feat[:1], feat[1:], origin,
        act[:1], act[1:],
    )  # fmt: skip


def user_candidates(
    rollouts: Rollouts,
    own_episodes: np.ndarray,
    n_pairs: int,
    segment: int,
    rng: np.random.Generator,
) -> QueryPool:
    """``n_pairs`` candidate pairs for one user: first segments from ``own_episodes`` (what
    the policy did for the user), second segments from any episode of ``rollouts``."""
    return build_query_pool(
        rollouts, n_pairs, segment, rng, near_share=NEAR_SHARE, first_episodes=own_episodes
    )


def ask_mixed(
    model: RewardModel,
    user: SealedUser,
    context: tuple[np.ndarray, np.ndarray, np.ndarray],
    candidates: QueryPool,
    m: int,
    active_share: float,
    rng: np.random.Generator,
    posterior: str,
) -> tuple[np.ndarray, np.ndarray]:
    """``round(active_share * m)`` queries by BALD (:func:`ask_active`), then the rest drawn
    uniformly among the other candidates.

    BALD asks what tells *this user* apart; a comparison every user answers alike (set down
    here, or held here?) carries no information about z and BALD never picks it, yet the
    shared part of the reward is learnt from exactly those. The random share asks them.
    """
    n_active = int(round(active_share * m))
    asked, answers = ask_active(model, user, context, candidates, n_active, rng, posterior)
    rest = candidates.draw(m - n_active, rng, exclude=asked)
    more = [user.answer(candidates.pair(int(i)), rng) for i in rest]
    return np.concatenate([asked, rest]).astype(np.int64), np.append(answers, more).astype(
        np.float32
    )


def ask_active(
    model: RewardModel,
    user: SealedUser,
    context: tuple[np.ndarray, np.ndarray, np.ndarray],
    candidates: QueryPool,
    m: int,
    rng: np.random.Generator,
    posterior: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Ask ``user`` ``m`` of ``candidates``, each the one of largest BALD score under the
    posterior (``posterior``: :func:`answers_posterior`) given ``context`` (the user's earlier
    pairs, as the model reads them: feature segments ``(P, T, F)`` and labels) and the
    answers so far; returns (indices, answers)."""
    feat_a = as_tensor(candidates.feat_a, model.device)
    feat_b = as_tensor(candidates.feat_b, model.device)
    scorer = model.pair_scorer(feat_a, feat_b)
    device = model.device  # every tensor of the asking on the model's device
    noise = torch.as_tensor(
        rng.standard_normal((BALD_SAMPLES, model.latent_dim)), dtype=torch.float32, device=device
    )
    available = torch.ones(len(candidates), dtype=torch.bool, device=device)
    unavailable = torch.tensor(-1.0, device=device)
    ctx_a, ctx_b, ctx_label = (np.asarray(x, np.float32) for x in context)
    asked, answers = [], []
    with torch.no_grad():
        for _ in range(m):
            mean, std = answers_posterior(model, (ctx_a, ctx_b, ctx_label), posterior)
            z = as_tensor(mean, device) + as_tensor(std, device) * noise
            scores = torch.where(available, bald_scores(scorer.logits(z)), unavailable)
            index = int(torch.argmax(scores))
            available[index] = False
            answer = user.answer(candidates.pair(index), rng)
            asked.append(index)
            answers.append(answer)
            ctx_a = np.concatenate([ctx_a, candidates.feat_a[index][None]])
            ctx_b = np.concatenate([ctx_b, candidates.feat_b[index][None]])
            ctx_label = np.append(ctx_label, np.float32(answer))
    return np.asarray(asked, np.int64), np.asarray(answers, np.float32)


def ask_random(
    user: SealedUser, candidates: QueryPool, m: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Ask ``user`` ``m`` of ``candidates`` drawn uniformly; returns (indices, answers)."""
    asked = candidates.draw(m, rng)
    answers = [user.answer(candidates.pair(int(i)), rng) for i in asked]
    return np.asarray(asked, np.int64), np.asarray(answers, np.float32)
