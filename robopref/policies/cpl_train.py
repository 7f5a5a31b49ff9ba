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
CPL paper pretrains so), then ``steps`` of the CPL loss with its conservative weight and
optional BC term, Adam, minibatches of ``batch`` pairs. Nothing here reads a user's goal or
group: the dataset's hidden fields are never touched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from tqdm import tqdm

from robopref.data.dataset import PreferenceDataset
from robopref.policies.cpl import CPLSettings, cpl_loss

#: ``--cpl-latent``: condition on the VPL encoder's z, or on nothing (the plain baseline)
LATENTS = ("vpl", "none")


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

    def __post_init__(self) -> None:
        if self.steps < 0 or self.bc_steps < 0 or self.steps + self.bc_steps < 1:
            raise ValueError(
                f"steps={self.steps} and bc_steps={self.bc_steps} must be >= 0, one positive"
            )
        if self.std < 0:
            raise ValueError(f"std={self.std} must be > 0 (fixed) or 0 (learned)")
        if self.batch < 1 or self.lr <= 0:
            raise ValueError(f"batch={self.batch} must be at least 1 and lr={self.lr} above 0")


@dataclass
class CPLData:
    """The tensors CPL trains on: segment observations and actions, labels, latents.

    ``latents`` ``(U, R, Z)``: R latent rows per user (Z = 0 for the plain baseline);
    ``step_mask`` ``(P, 2, T)``: 1 where a step's action was recorded.
    """

    obs: torch.Tensor  # (P, 2, T, O)
    act: torch.Tensor  # (P, 2, T, A), 0 where not recorded
    step_mask: torch.Tensor  # (P, 2, T)
    label: torch.Tensor  # (P,), NaN: skipped
    user: torch.Tensor  # (P,)
    latents: torch.Tensor  # (U, R, Z)

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


def cpl_data(dataset: PreferenceDataset, latents: np.ndarray) -> CPLData:
    """The tensors of ``dataset`` (observations as the env gives them, not a reward model's
    view) with ``latents`` ``(U, R, Z)`` for its U users."""
    if latents.shape[0] != dataset.n_users:
        raise ValueError(f"latents for {latents.shape[0]} users, the data has {dataset.n_users}")
    act = np.stack([dataset.act_a, dataset.act_b], axis=1)
    mask = np.isfinite(act).all(-1)
    return CPLData(
        obs=torch.as_tensor(np.stack([dataset.obs_a, dataset.obs_b], axis=1), dtype=torch.float32),
        act=torch.as_tensor(np.where(mask[..., None], act, 0.0), dtype=torch.float32),
        step_mask=torch.as_tensor(mask, dtype=torch.float32),
        label=torch.as_tensor(dataset.label, dtype=torch.float32),
        user=torch.as_tensor(dataset.user, dtype=torch.int64),
        latents=torch.as_tensor(latents, dtype=torch.float32),
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
    """``obs`` ``(B, 2, T, O)`` with each pair's ``z`` ``(B, Z)`` appended to every step."""
    return torch.cat([obs, z[:, None, None, :].expand(*obs.shape[:-1], z.shape[-1])], dim=-1)


def _batch(
    data: CPLData, index: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Observations ⊕ the answering user's z (one of its latent rows, drawn), actions, mask."""
    users = data.user[index]
    rows = torch.randint(data.latents.shape[1], (len(index),), generator=generator)
    z = data.latents[users, rows.to(users.device)]  # (B, Z)
    return _with_z(data.obs[index], z), data.act[index], data.step_mask[index]


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
    answered = torch.nonzero(~torch.isnan(data.label)).flatten()
    if len(answered) == 0:
        raise ValueError("the dataset has no answered pair (every label is NaN): nothing to learn")
    total = training.bc_steps + training.steps
    log: list[dict[str, float]] = []
    policy.train()
    for step in tqdm(range(start, total), desc="cpl", initial=start, total=total,
                     disable=not progress):  # fmt: skip
        pick = torch.randint(len(answered), (training.batch,), generator=generator)
        pick = pick.to(answered.device)
        obs, act, mask = _batch(data, answered[pick], generator)
        log_probs = step_log_probs(policy, obs, act, mask)  # (B, 2, T)
        if step < training.bc_steps:
            loss = -(log_probs.sum() / mask.sum().clamp(min=1.0))
        else:
            loss = cpl_loss(log_probs[:, 0], log_probs[:, 1], data.label[answered[pick]], settings)
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
