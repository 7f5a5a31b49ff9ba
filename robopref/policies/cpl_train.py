"""``robopref train-policy --method cpl``: a policy learned straight from the preferences.

Contrastive Preference Learning (:mod:`robopref.policies.cpl`) trains pi(a | s, z) on the
recorded actions of the answered segments: no reward model is fitted for the policy and no
RL is run. The policy is the same SB3 actor as train-policy's PPO (the recipe's network,
saved as a PPO ``model.zip``), so ``evaluate``, ``video``, the sweep and the table load and
serve it as they do any latent policy.

**Where z comes from (the decision).** From the VPL encoder of a trained reward model
(``--reward``), not from a set encoder learned jointly with the CPL loss. Why: a new user is
then personalized exactly as for VPL + RL, by k active queries chosen by BALD on that model's
posterior (:mod:`robopref.policies.personalize`), so the two methods are compared on the
same z of the same answers and differ only in how the policy is learned. A jointly learned
encoder would have no calibrated likelihood p(answer | z) to choose queries with, and would
have to learn users from the same few thousand answers the policy learns from. The cost:
CPL here needs a VPL reward model (but never its rewards).

Each training pair gets the latent of the user who answered it, drawn per batch among that
user's posterior means after 1, 2, 4, 8 and 16 active answers and after all of them
(:func:`robopref.reward.evaluation.few_shot_means`, as the RL policies' ``few-shot``
latents), so the policy meets the latents of new users who answered only a few queries.
``--cpl-latent none`` trains the non-personalized baseline (z empty: one policy for all,
as BTL is one reward for all); it needs no reward model.

Training: ``bc_steps`` of behaviour cloning on every recorded step of both segments (the
CPL paper pretrains so) or, with ``bc_data="preferred"``, on the preferred segment of each
answer under its user's z; then ``steps`` of the CPL loss with its conservative weight and
optional BC term, Adam, minibatches of ``batch`` pairs, or (``loss="rankings"``) of
``batch`` ranking questions under the Plackett-Luce form of the loss. Nothing here reads a
user's goal or group: the dataset's hidden fields are never touched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from tqdm import tqdm

from robopref.data.dataset import PreferenceDataset
from robopref.policies.cpl import CPLSettings, cpl_loss, cpl_ranking_loss, segment_scores

#: ``--cpl-latent``: condition on the VPL encoder's z, or on nothing (the plain baseline)
LATENTS = ("vpl", "none")
#: ``--cpl-bc-data``: what BC pretraining imitates (CPLTraining.bc_data)
BC_DATA = ("all", "preferred")
#: ``--cpl-loss``: the contrastive loss's unit (CPLTraining.loss)
LOSSES = ("pairs", "rankings")


@dataclass(frozen=True)
class CPLTraining:
    """How a CPL policy is optimised (the CLI's defaults; the objective's are CPLSettings).

    Measured on PlatePlacement's loop answers (README, CPL): 3,000 CPL steps after 1,000 of
    BC; more steps fit the answers better (0.79 at 15,000) and serve new users worse.
    """

    steps: int = 3000
    bc_steps: int = 1000
    batch: int = 128
    lr: float = 3e-4
    #: the policy's action standard deviation, held fixed during training (0: learned).
    #: Under a Gaussian policy a segment's score is minus the squared distance of its
    #: actions from the policy's means over 2 std^2, so the std is CPL's temperature; learned,
    #: it collapses (CPL rewards certainty about the preferred actions without bound) and the
    #: scores of any other action explode.
    std: float = 0.5
    #: what BC pretraining imitates: every recorded step of both segments (``all``), or the
    #: preferred segment of each answer alone (``preferred``: a ranking's best item, a pair's
    #: chosen side, both sides of a tie), under the answering user's z
    bc_data: str = "all"
    #: the contrastive loss: over each answered pair (``pairs``), or Plackett-Luce over each
    #: ranking question's items (``rankings``: a dataset of ``collect --question ranking:K``)
    loss: str = "pairs"

    def __post_init__(self) -> None:
        if self.steps < 0 or self.bc_steps < 0 or self.steps + self.bc_steps < 1:
            raise ValueError(
                f"steps={self.steps} and bc_steps={self.bc_steps} must be >= 0, one positive"
            )
        if self.std < 0:
            raise ValueError(f"std={self.std} must be > 0 (fixed) or 0 (learned)")
        if self.bc_data not in BC_DATA or self.loss not in LOSSES:
            raise ValueError(
                f"bc_data={self.bc_data!r} must be one of {BC_DATA} and loss={self.loss!r} one "
                f"of {LOSSES}"
            )
        if self.batch < 1 or self.lr <= 0:
            raise ValueError(f"batch={self.batch} must be at least 1 and lr={self.lr} above 0")


@dataclass
class CPLData:
    """The tensors CPL trains on: segment observations and actions, labels, latents, and
    (for ``loss="rankings"``) the order of each ranking question's items.

    ``latents`` ``(U, R, Z)``: R latent rows per user (Z = 0 for the plain baseline);
    ``step_mask`` ``(P, 2, T)``: 1 where a step's action was recorded.
    """

    obs: torch.Tensor  # (P, 2, T, O)
    act: torch.Tensor  # (P, 2, T, A), 0 where not recorded
    step_mask: torch.Tensor  # (P, 2, T)
    label: torch.Tensor  # (P,), NaN: skipped
    user: torch.Tensor  # (P,)
    latents: torch.Tensor  # (U, R, Z)
    #: each ranking question's items, best first, as (pair, side) rows of obs / act:
    #: ``(Q, K, 2)`` (``(0, 2, 2)`` for a dataset read as pairs), and its user ``(Q,)``
    ranked: torch.Tensor = field(default_factory=lambda: torch.zeros((0, 2, 2), dtype=torch.int64))
    ranked_user: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))

    @property
    def n_pairs(self) -> int:
        """Number of pairs P."""
        return int(self.label.shape[0])

    def to(self, device: torch.device | str) -> CPLData:
        """The same tensors on ``device`` (the policy's: ``--device cuda`` trains there)."""
        return CPLData(*(getattr(self, f.name).to(device) for f in fields(self)))


def check_actions(dataset: PreferenceDataset, source: str) -> None:
    """Refuse a dataset whose segments carry no recorded actions, naming the fix."""
    recorded = np.isfinite(dataset.act_a).all(-1) & np.isfinite(dataset.act_b).all(-1)
    if dataset.act_a.shape[-1] == 0 or recorded.mean() < 0.5:
        raise ValueError(
            f"the dataset {source} records the actions of only {recorded.mean():.0%} of its "
            "segments' steps: CPL learns from the actions people judged. Collect it with "
            "`robopref collect`, `robopref loop` or a study created by this version"
        )


def ranked_questions(dataset: PreferenceDataset, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Each question's items best first, ``(Q, K, 2)`` rows (pair, side), and its user
    ``(Q,)``, recovered from the pairs a ranking's answer was stored as (every earlier item
    over every later one: an item's rank is how many of its pairs it wins; items are told
    apart by their observations). A question that showed one segment twice (11 of 9,600 in
    a 200-user collect: the pool repeats segments) is left out. Refuses, naming the fix, a
    dataset whose questions are not strict rankings of one size K >= 2."""
    order = np.argsort(dataset.question, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(dataset.question[order]) != 0])
    questions, users, sizes = [], [], set()
    for pairs in np.split(order, starts[1:]):
        labels = dataset.label[pairs]
        if not np.isin(labels, (0.0, 1.0)).all():
            raise ValueError(
                f"--cpl-loss rankings needs strict answers; {source} has a question answered "
                f"{sorted(set(labels.tolist()))} (a tie, a skip or a soft label): use --cpl-loss "
                "pairs, or collect hard-labelled rankings (--question ranking:4)"
            )
        items: dict[bytes, tuple[int, int]] = {}
        wins: dict[bytes, float] = {}
        for pair, label in zip(pairs.tolist(), labels.tolist(), strict=True):
            for side, won in ((0, label), (1, 1.0 - label)):
                key = (dataset.obs_a if side == 0 else dataset.obs_b)[pair].tobytes()
                items.setdefault(key, (pair, side))
                wins[key] = wins.get(key, 0.0) + won
        size = len(items)
        if size < 2 or len(pairs) > size * (size - 1) // 2:
            continue  # one segment shown twice (a pool repeats segments): no single order
        if len(pairs) != size * (size - 1) // 2 or sorted(wins.values()) != list(range(size)):
            raise ValueError(
                f"--cpl-loss rankings needs each question's answer as a full ranking; a "
                f"question of {source} stores {len(pairs)} pairs over {size} items, not the "
                "pairs of one order: collect with --question ranking:K, or use --cpl-loss pairs"
            )
        questions.append([items[key] for key in sorted(wins, key=wins.__getitem__, reverse=True)])
        users.append(int(dataset.user[pairs[0]]))
        sizes.add(size)
    if len(sizes) != 1:
        raise ValueError(
            f"--cpl-loss rankings needs rankings of one size; {source} has {sorted(sizes)} items "
            "per question: collect with one --question ranking:K"
        )
    return np.asarray(questions, np.int64), np.asarray(users, np.int64)


def cpl_data(
    dataset: PreferenceDataset, latents: np.ndarray, rankings: bool = False, source: str = ""
) -> CPLData:
    """The tensors of ``dataset`` (observations as the env gives them, not a reward model's
    view) with ``latents`` ``(U, R, Z)`` for its U users; with ``rankings``, each question's
    order too (:func:`ranked_questions`)."""
    if latents.shape[0] != dataset.n_users:
        raise ValueError(f"latents for {latents.shape[0]} users, the data has {dataset.n_users}")
    act = np.stack([dataset.act_a, dataset.act_b], axis=1)
    mask = np.isfinite(act).all(-1)
    ranked, ranked_user = np.zeros((0, 2, 2), np.int64), np.zeros(0, np.int64)
    if rankings:
        ranked, ranked_user = ranked_questions(dataset, source or "the dataset")
    return CPLData(
        obs=torch.as_tensor(np.stack([dataset.obs_a, dataset.obs_b], axis=1), dtype=torch.float32),
        act=torch.as_tensor(np.where(mask[..., None], act, 0.0), dtype=torch.float32),
        step_mask=torch.as_tensor(mask, dtype=torch.float32),
        label=torch.as_tensor(dataset.label, dtype=torch.float32),
        user=torch.as_tensor(dataset.user, dtype=torch.int64),
        latents=torch.as_tensor(latents, dtype=torch.float32),
        ranked=torch.as_tensor(ranked),
        ranked_user=torch.as_tensor(ranked_user),
    )


def step_log_probs(
    policy: ActorCriticPolicy, obs: torch.Tensor, act: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``log pi(a_t | s_t)`` for ``obs`` ``(..., T, O)`` and ``act`` ``(..., T, A)``; 0 where
    ``mask`` is 0 (no recorded action)."""
    lead = obs.shape[:-1]
    dist = policy.get_distribution(obs.reshape(-1, obs.shape[-1]))
    log_prob = dist.log_prob(act.reshape(-1, act.shape[-1])).reshape(lead)
    return log_prob * mask


def _with_z(obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``obs`` ``(B, K, T, O)`` with each unit's ``z`` ``(B, Z)`` appended to every step."""
    return torch.cat([obs, z[:, None, None, :].expand(*obs.shape[:-1], z.shape[-1])], dim=-1)


def _draw_z(data: CPLData, users: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``(B, Z)``: one of each user's latent rows, drawn."""
    rows = torch.randint(data.latents.shape[1], (len(users),), generator=generator)
    return data.latents[users, rows.to(users.device)]


def _batch(
    data: CPLData, index: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs ``index``: observations ⊕ the answering user's z, actions, mask (B, 2, ...)."""
    z = _draw_z(data, data.user[index], generator)
    return _with_z(data.obs[index], z), data.act[index], data.step_mask[index]


def _ranked_batch(
    data: CPLData, index: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ranking questions ``index``: their items best first (B, K, ...), as :func:`_batch`."""
    rows = data.ranked[index]  # (B, K, 2): (pair, side)
    pair, side = rows[..., 0], rows[..., 1]
    z = _draw_z(data, data.ranked_user[index], generator)
    obs = data.obs[pair, side]
    return _with_z(obs, z), data.act[pair, side], data.step_mask[pair, side]


def _preferred_mask(label: torch.Tensor) -> torch.Tensor:
    """``(B, 2)``: 1 on a pair's preferred side (both sides of a tie), 0 on the other."""
    return torch.stack([label >= 0.5, label <= 0.5], dim=-1).float()


def _step_loss(
    policy: ActorCriticPolicy,
    data: CPLData,
    units: torch.Tensor,
    bc: bool,
    settings: CPLSettings,
    training: CPLTraining,
    generator: torch.Generator,
) -> torch.Tensor:
    """One minibatch's loss: BC (``bc``) or the contrastive loss, over pairs or rankings."""
    if training.loss == "rankings":
        obs, act, mask = _ranked_batch(data, units, generator)
        if bc and training.bc_data == "preferred":
            obs, act, mask = obs[:, :1], act[:, :1], mask[:, :1]  # the best item
    else:
        obs, act, mask = _batch(data, units, generator)
        if bc and training.bc_data == "preferred":
            mask = mask * _preferred_mask(data.label[units])[..., None]
    log_probs = step_log_probs(policy, obs, act, mask)  # (B, K, T)
    if bc:
        return -(log_probs.sum() / mask.sum().clamp(min=1.0))
    if training.loss == "rankings":
        best = settings.bc_weight * log_probs[:, 0].mean(-1).mean() if settings.bc_weight else 0.0
        return cpl_ranking_loss(segment_scores(log_probs, settings), settings) - best
    return cpl_loss(log_probs[:, 0], log_probs[:, 1], data.label[units], settings)


def _fix_std(policy: ActorCriticPolicy, std: float) -> None:
    """Hold the policy's action std at ``std`` (0: leave it learned)."""
    if std > 0:
        with torch.no_grad():
            policy.log_std.fill_(float(np.log(std)))
        policy.log_std.requires_grad_(False)


def train_cpl(
    policy: ActorCriticPolicy,
    data: CPLData,
    settings: CPLSettings,
    training: CPLTraining,
    seed: int,
    progress: bool = True,
    start: int = 0,
) -> list[dict[str, float]]:
    """Train ``policy`` in place: BC pretraining, then CPL (module docstring), from step
    ``start`` (a resumed run). Returns the loss every 500 steps."""
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same draws on any device
    data = data.to(policy.device)
    _fix_std(policy, training.std)
    trained = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trained, lr=training.lr)
    if training.loss == "rankings":
        units = torch.arange(len(data.ranked), device=data.ranked.device)
    else:
        units = torch.nonzero(~torch.isnan(data.label)).flatten()
    if len(units) == 0:
        raise ValueError("the dataset has no answered question (every label is NaN): nothing "
                         "to learn")  # fmt: skip
    total = training.bc_steps + training.steps
    log: list[dict[str, float]] = []
    policy.train()
    for step in tqdm(range(start, total), desc="cpl", initial=start, total=total,
                     disable=not progress):  # fmt: skip
        pick = torch.randint(len(units), (training.batch,), generator=generator)
        bc = step < training.bc_steps
        loss = _step_loss(policy, data, units[pick.to(units.device)], bc, settings, training,
                          generator)  # fmt: skip
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        if (step + 1) % 500 == 0 or step + 1 == total:
            log.append(
                {"step": step + 1, "loss": float(loss.detach()), "bc": step < training.bc_steps}
            )
    policy.eval()
    return log


def preference_accuracy(
    policy: ActorCriticPolicy, data: CPLData, settings: CPLSettings, seed: int = 0
) -> float:
    """Share of decided answers (label not 0.5 or NaN) whose preferred segment the policy
    scores higher, each pair under its user's all-answers latent: CPL's own training fit."""
    data = data.to(policy.device)
    decided = torch.nonzero(~torch.isnan(data.label) & (data.label != 0.5)).flatten()
    if len(decided) == 0:
        return float("nan")
    correct = 0
    with torch.no_grad():
        for chunk in decided.split(1024):
            obs = _with_z(data.obs[chunk], data.latents[data.user[chunk], -1])
            lp = step_log_probs(policy, obs, data.act[chunk], data.step_mask[chunk])
            score = settings.alpha * lp.sum(-1)
            correct += int(((score[:, 0] > score[:, 1]) == (data.label[chunk] > 0.5)).sum())
    return correct / len(decided)


def plain_latents(n_users: int) -> np.ndarray:
    """``(U, 1, 0)``: the non-personalized baseline's (empty) latents."""
    return np.zeros((n_users, 1, 0), np.float32)


def training_latents(means: np.ndarray, owners: np.ndarray, n_users: int) -> np.ndarray:
    """``few_shot_means``' rows ``(R * U, Z)`` and their users as ``(U, R, Z)``."""
    order = np.argsort(owners, kind="stable")
    return means[order].reshape(n_users, -1, means.shape[-1]).astype(np.float32)


def describe(settings: CPLSettings, training: CPLTraining, latent: str) -> dict[str, Any]:
    """What a CPL policy's ``meta.json`` records of how it was trained."""
    return {"latent": latent, "objective": asdict(settings), "training": asdict(training)}
