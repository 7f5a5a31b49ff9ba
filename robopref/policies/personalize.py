"""Few-shot personalization: ask a new user k queries, infer z, bind the policy to it.

>>> pool = candidate_pool(reward_model, episodes=60, pairs=512, seed=0)
>>> user = population.sample_users(1, rng)[0]
>>> bound = personalize(policy, reward_model, lambda i: user.answer(pool.pair(i), rng),
...                     k=4, strategy="active", candidates=pool, rng=rng)
>>> action = bound(obs)  # obs of the raw env; z is appended inside

Inference is :func:`robopref.reward.active.infer_user` (active: one query at a time, the
most informative about z under the current posterior). A model without a latent (BTL) asks
nothing and binds an empty z.

``robopref evaluate`` and ``robopref video`` serve the same new users the same way: the
users (:func:`new_users`), the candidate pool (:func:`new_user_pool`), the queries each
user answers (:func:`personalize_new_user`) and the initial state of each episode
(:func:`episode_seed`) all follow from one ``--seed`` here, so the two commands cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from robopref.data.queries import QueryPool, build_query_pool
from robopref.data.rollouts import BehaviourMix, collect_rollouts, join_rollouts
from robopref.envs.wrappers import SetDown
from robopref.policies.checkpoint import LoadedPolicy
from robopref.policies.rollout import policy_rollouts
from robopref.reward.active import POSTERIOR, InferenceResult, infer_user
from robopref.reward.base import RewardModel
from robopref.reward.inputs import candidate_inputs
from robopref.reward.typed_asking import QuestionMenu, TypedCandidates, infer_user_typed
from robopref.users.population import Population
from robopref.users.synthetic import SyntheticUser

#: how a new user is served by default (``evaluate`` and ``video`` take their options' defaults
#: from here): queries asked, how they are chosen, and the candidate pool they come from.
QUERIES = 4
STRATEGY = "active"
POOL_PAIRS = 512
POOL_EPISODES = 60
#: where the candidates come from: ``pool`` (goal-agnostic behaviour only) or ``policy``
#: (also the latent policy's own episodes under ``POLICY_LATENTS`` z drawn from the prior,
#: each pair's first segment one of them: what the robot would do for different people)
QUERY_SOURCES = ("pool", "policy")
QUERY_SOURCE = "pool"
POLICY_LATENTS = 32


@dataclass
class PersonalizedPolicy:
    """A latent policy bound to one user's z: call it on raw observations."""

    policy: Any
    z: np.ndarray
    inference: InferenceResult | None = None

    def augment(self, obs: np.ndarray) -> np.ndarray:
        """``obs`` with this user's z appended (float32)."""
        return np.concatenate([np.asarray(obs, np.float32), self.z]).astype(np.float32)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action for a raw observation."""
        if isinstance(self.policy, LoadedPolicy):
            return self.policy.predict(self.augment(obs), deterministic=True)
        action, _ = self.policy.predict(self.augment(obs), deterministic=True)
        return np.asarray(action, dtype=np.float32)


def candidate_pool(
    reward_model: RewardModel,
    episodes: int = POOL_EPISODES,
    pairs: int = POOL_PAIRS,
    seed: int = 0,
    env_id: str | None = None,
) -> QueryPool:
    """Candidate queries for new users: segments of the reward model's length from the
    default behaviour mix (the same kind of pairs it was trained on)."""
    env_id = env_id or reward_model.meta.get("env_id")
    if not env_id:
        raise ValueError("the reward model does not record its env id: pass env_id=...")
    segment = int(reward_model.meta.get("segment_length", 10))
    rng = np.random.default_rng(seed)
    env_kwargs = reward_model.meta.get("env_kwargs") or {}
    rollouts = collect_rollouts(env_id, episodes, rng, BehaviourMix(), env_kwargs=env_kwargs)
    return build_query_pool(rollouts, pairs, segment, rng)


def personalize(
    policy: Any,
    reward_model: RewardModel,
    ask: Callable[[int], float],
    k: int = QUERIES,
    strategy: str = STRATEGY,
    candidates: Any = None,
    rng: np.random.Generator | int | None = None,
    posterior: str = POSTERIOR,
) -> PersonalizedPolicy:
    """Ask ``k`` of ``candidates`` through ``ask(index) -> label``, infer z (posterior mean,
    ``posterior``: ``likelihood`` or ``encoder``, see :mod:`robopref.reward.active`), and
    return ``policy`` bound to it (``policy``: a :class:`LoadedPolicy` or SB3 model)."""
    if isinstance(policy, LoadedPolicy) and policy.kind != "latent":
        raise ValueError(f"personalize needs a latent policy, {policy.folder} is {policy.kind}")
    if reward_model.latent_dim == 0:
        return PersonalizedPolicy(policy, np.zeros(0, np.float32), None)
    if hasattr(candidates, "feat_a"):  # a QueryPool: pass the side the model reads
        candidates = candidate_inputs(reward_model, candidates)
    result = infer_user(reward_model, ask, k, strategy, candidates, rng, posterior=posterior)
    return PersonalizedPolicy(policy, np.asarray(result.mean, np.float32), result)


def new_users(population: Population, n: int, seed: int) -> list[SyntheticUser]:
    """The ``n`` new users of an evaluation with ``seed``."""
    return population.sample_users(n, np.random.default_rng(seed))


def new_user_pool(
    reward_model: RewardModel,
    seed: int,
    pairs: int = POOL_PAIRS,
    episodes: int = POOL_EPISODES,
    env_id: str | None = None,
    source: str = QUERY_SOURCE,
    policy: LoadedPolicy | None = None,
) -> QueryPool:
    """The candidate queries new users are asked from in an evaluation with ``seed``
    (``source`` ``policy``: :func:`policy_query_pool` of ``policy``)."""
    if source not in QUERY_SOURCES:
        raise ValueError(f"query source {source!r} is unknown: use one of {QUERY_SOURCES}")
    if source == "policy":
        if policy is None:
            raise ValueError("policy queries need the latent policy: pass policy=...")
        return policy_query_pool(policy, reward_model, seed + 1, pairs, episodes)
    return candidate_pool(reward_model, episodes, pairs, seed + 1, env_id)


def policy_query_pool(
    policy: LoadedPolicy,
    reward_model: RewardModel,
    seed: int,
    pairs: int = POOL_PAIRS,
    episodes: int = POOL_EPISODES,
    latents: int = POLICY_LATENTS,
) -> QueryPool:
    """Candidates about the latent policy's own behaviour: its greedy episodes under
    ``latents`` z drawn from the prior, each pair's first segment from one of them and its
    second from those or from ``episodes`` goal-agnostic ones (:func:`candidate_pool`'s)."""
    env_id = str(reward_model.meta.get("env_id") or policy.meta["env_id"])
    env_kwargs = reward_model.meta.get("env_kwargs") or {}
    rng = np.random.default_rng([seed, 23])
    z = rng.standard_normal((latents, reward_model.latent_dim)).astype(np.float32)
    own = policy_rollouts(
        env_id, policy.predict, z, 1,
        int(rng.integers(2**31)), SetDown.read(policy.meta.get("set_down")), env_kwargs,
    )  # fmt: skip
    base = collect_rollouts(
        env_id, episodes, np.random.default_rng(seed), BehaviourMix(), env_kwargs=env_kwargs
    )
    segment = int(reward_model.meta.get("segment_length", 10))
    first = base.n_episodes + np.arange(latents)
    return build_query_pool(join_rollouts([base, own]), pairs, segment, rng, first_episodes=first)


def new_user_inference(
    policy: LoadedPolicy,
    reward_model: RewardModel | None,
    user: SyntheticUser,
    index: int,
    pool: QueryPool | None,
    k: int,
    strategy: str,
    seed: int,
    posterior: str = POSTERIOR,
    menu: QuestionMenu | None = None,
) -> InferenceResult | None:
    """How new user ``index`` of an evaluation with ``seed`` is inferred from ``k`` queries
    of ``pool``: what was asked, the answers, and the posterior after each one (the first
    ``j`` queries of a run with ``k >= j`` are the ``j`` of a run with ``j``). None for a
    policy without a user latent (BTL, oracle: nothing is asked). ``menu``: the question
    types asked (:mod:`robopref.reward.typed_asking`; None or pairs of segments: the pair
    queries of ``pool`` themselves)."""
    if policy.kind != "latent" or int(policy.meta["latent_dim"]) == 0:
        return None
    if reward_model is None or pool is None:
        raise ValueError(f"{policy.folder} needs its reward model and a candidate pool")
    return infer_new_user(reward_model, user, index, pool, k, strategy, seed, posterior, menu)


def infer_new_user(
    reward_model: RewardModel,
    user: SyntheticUser,
    index: int,
    pool: QueryPool,
    k: int,
    strategy: str,
    seed: int,
    posterior: str = POSTERIOR,
    menu: QuestionMenu | None = None,
) -> InferenceResult:
    """:func:`new_user_inference` for a latent reward model alone (no policy)."""
    ask_rng = np.random.default_rng([seed, index, 7])
    if menu is not None and not menu.pairs_only:
        candidates = typed_candidates(reward_model, pool, menu, seed)

        def ask(kind: Any, rows: np.ndarray) -> Any:
            answer = user.answer_question(kind, candidates.user_items[rows], ask_rng)
            return answer.tolist() if np.ndim(answer) else answer.item()

        return infer_user_typed(
            reward_model, ask, k, candidates, strategy,
            np.random.default_rng([seed, index, 11]), posterior=posterior,
        )  # fmt: skip
    result = infer_user(
        reward_model,
        lambda i: user.answer(pool.pair(i), ask_rng),
        k,
        strategy,
        candidate_inputs(reward_model, pool),
        np.random.default_rng([seed, index, 11]),
        posterior=posterior,
    )
    return result


def typed_candidates(
    reward_model: RewardModel, pool: QueryPool, menu: QuestionMenu, seed: int
) -> TypedCandidates:
    """The candidate questions of ``menu`` new users of an evaluation with ``seed`` are asked
    from: items are the segments of ``pool``'s pairs (both sides)."""
    return TypedCandidates.from_pool(
        menu, candidate_inputs(reward_model, pool), (pool.feat_a, pool.feat_b), seed
    )


def personalize_new_user(
    policy: LoadedPolicy,
    reward_model: RewardModel | None,
    user: SyntheticUser,
    index: int,
    pool: QueryPool | None,
    k: int,
    strategy: str,
    seed: int,
    posterior: str = POSTERIOR,
    menu: QuestionMenu | None = None,
) -> np.ndarray | None:
    """The z new user ``index`` of an evaluation with ``seed`` gets after answering ``k``
    queries of ``pool`` (:func:`new_user_inference`); None for a policy without a latent."""
    result = new_user_inference(
        policy, reward_model, user, index, pool, k, strategy, seed, posterior, menu
    )
    return None if result is None else np.asarray(result.mean, np.float32)


def episode_seed(seed: int, index: int, episode: int) -> int:
    """The reset seed of episode ``episode`` of new user ``index`` (every policy gets the
    same initial states)."""
    return seed * 100_003 + index * 97 + episode
