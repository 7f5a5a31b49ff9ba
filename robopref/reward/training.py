"""The training loop every reward model shares: batches of users, validation on held-out
users, early stopping, the best checkpoint, and resumable state.

Batches are sets of users (all of their pairs); each model's ``training_loss`` decides
what to do with them (BTL/DPL: every answered pair; VPL: context and target pairs of the
same user). Validation uses held-out *users* and is deterministic (a fixed generator), so
epochs compare fairly. Files, when ``checkpoint`` is given:

* ``checkpoint``: the best model so far (by validation cross-entropy), loadable with
  :func:`robopref.reward.registry.load_reward_model`;
* ``checkpoint + ".resume"``: the last state (weights, optimizer, random generator, history)
  every ``checkpoint_every`` epochs; ``resume=True`` continues from it and gives the same
  result as an uninterrupted run.

Both are written atomically (:func:`robopref.reward.checkpoint.save_payload`).

The loop knows models through their interface only; :meth:`RewardModel.fit` calls it.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from robopref.data.dataset import SCHEMA_VERSION, PreferenceDataset
from robopref.reward.checkpoint import load_payload, model_payload, save_payload
from robopref.reward.data import UserTensors, dataset_fingerprint
from robopref.reward.nets import resolve_device

if TYPE_CHECKING:
    from robopref.reward.base import RewardModel

#: settings that may change between an interrupted run and its resumption
RESUMABLE_CHANGES = ("epochs", "patience", "log_every", "checkpoint_every")


@dataclass
class TrainSettings:
    """How a reward model is trained (the model's own config says what it is)."""

    epochs: int = 400
    lr: float = 1e-3
    batch: int = 16
    patience: int = 100
    kl_delay: int = 20
    kl_warmup: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 10.0
    seed: int = 0
    val_fraction: float = 0.1
    n_comparison: int = 256
    checkpoint_every: int = 5
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch < 1 or self.patience < 1:
            raise ValueError("epochs, batch and patience must be at least 1")
        # written as "not (ok)" so that NaN, which compares False with everything, fails
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr={self.lr} must be a finite number > 0 (--lr)")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay={self.weight_decay} must be a finite number >= 0")
        if not 0 < self.grad_clip < math.inf:
            raise ValueError(f"grad_clip={self.grad_clip} must be a finite number > 0")
        if not 0 < self.val_fraction < 1:
            raise ValueError(
                f"val_fraction={self.val_fraction} (--val-fraction) is the share of the training "
                "users held out for validation: use a number strictly between 0 and 1, e.g. 0.1"
            )
        if self.kl_delay < 0 or self.kl_warmup < 0:
            raise ValueError("kl_delay and kl_warmup must be >= 0")
        if self.checkpoint_every < 1 or self.log_every < 1 or self.n_comparison < 1:
            raise ValueError("checkpoint_every, log_every and n_comparison must be at least 1")


@dataclass
class TrainResult:
    """What a training run did."""

    best_epoch: int
    best_val_nll: float
    best_val_accuracy: float
    epochs_run: int
    stopped_early: bool
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def kl_schedule(settings: TrainSettings, has_kl: bool) -> TrainSettings:
    """``settings`` as a model with a KL term (``has_kl``: VPL) or without one trains with
    them: without a KL term there is no KL delay and no warm-up (early stopping has nothing
    to wait for)."""
    return settings if has_kl else dataclasses.replace(settings, kl_delay=0, kl_warmup=0)


def kl_anneal(epoch: int, delay: int, warmup: int) -> float:
    """The KL weight's factor at ``epoch``: 0 for ``delay`` epochs, then a linear ramp to 1
    over ``warmup`` epochs (the latent is learnt before the KL can switch it off)."""
    if epoch < delay:
        return 0.0
    return min(1.0, (epoch - delay + 1) / warmup) if warmup > 0 else 1.0


def resume_path(checkpoint: str | Path) -> Path:
    """Where the resumable state of a run writing ``checkpoint`` lives."""
    return Path(str(checkpoint) + ".resume")


def _reset_parameters(model: RewardModel, seed: int) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if module is not model and hasattr(module, "reset_parameters"):
                module.reset_parameters()


def _validate(model: RewardModel, users: UserTensors, settings: TrainSettings) -> dict[str, float]:
    generator = torch.Generator().manual_seed(settings.seed + 7919)
    totals = {"nll": 0.0, "n": 0.0, "correct": 0.0, "scored": 0.0}
    model.eval()
    with torch.no_grad():
        for start in range(0, users.n_users, settings.batch):
            rows = torch.arange(start, min(start + settings.batch, users.n_users))
            sums = model.validation_sums(users.select(rows), generator)
            totals = {key: totals[key] + sums[key] for key in totals}
    model.train()
    return {
        "val_nll": totals["nll"] / max(totals["n"], 1.0),
        "val_accuracy": totals["correct"] / max(totals["scored"], 1.0),
    }


def _provenance(model: RewardModel, dataset: PreferenceDataset) -> None:
    model.meta.update(
        env_id=dataset.env_id,
        env_kwargs=dict(dataset.meta.get("env_kwargs") or {}),
        feature_names=list(dataset.feature_names),
        segment_length=dataset.segment_length,
        dataset_schema=int(dataset.meta.get("schema_version", SCHEMA_VERSION)),
        dataset_fingerprint=dataset_fingerprint(dataset),
        reward_input=str(dataset.meta.get("reward_input", "observations")),
    )
    if dataset.meta.get("population"):  # what evaluate and video serve by default
        model.meta["population"] = str(dataset.meta["population"])


def _check_resumable(state: dict[str, Any], model: RewardModel, settings: TrainSettings) -> None:
    if state["kind"] != model.kind or state["config"] != dataclasses.asdict(model.config):
        raise ValueError(
            f"the resume state is for a {state['kind']} model with config {state['config']}, "
            "not this one: resume with the original options or start afresh with --overwrite"
        )
    saved, now = dict(state["settings"]), dataclasses.asdict(settings)
    for key in RESUMABLE_CHANGES:
        saved.pop(key, None)
        now.pop(key, None)
    if saved != now:
        changed = sorted(k for k in now if saved.get(k) != now[k])
        raise ValueError(
            f"cannot resume with changed training settings {changed}: use the original values "
            "or start afresh with --overwrite"
        )
    if state["meta"].get("dataset_fingerprint") != model.meta.get("dataset_fingerprint"):
        raise ValueError("the resume state was trained on another dataset: pass the same --data")


def train(
    model: RewardModel,
    dataset: PreferenceDataset,
    *,
    val_dataset: PreferenceDataset | None = None,
    settings: TrainSettings | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device = "auto",
    extra: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    warm_start: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Fit ``model`` on ``dataset``; validate on ``val_dataset`` (default: a user split).

    ``warm_start`` continues from the model's current weights, normalisation and comparison
    set (``robopref loop`` refits each round's model this way) instead of initialising them.

    ``extra`` entries are stored in the checkpoints (the CLI puts the user split there).
    ``log`` is a callable taking a line (default: print to stderr); ``on_epoch`` gets each
    epoch's history row (``epoch`` from 0, ``loss``, ``kl`` for latent models, ``val_nll``,
    ``val_accuracy``: what ``--tb`` logs). The model ends with the best validation weights.

    With a ``checkpoint``, the resumable state is written before the first epoch too, so an
    interrupted run (Ctrl-C: ``KeyboardInterrupt`` is logged and re-raised) can always be
    continued with ``resume=True``, from the last state saved.
    """
    settings = settings or TrainSettings()
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if val_dataset is None:
        if dataset.n_users < 2:
            raise ValueError("need at least 2 users to hold some out for validation")
        dataset, val_dataset = dataset.split_users(settings.val_fraction, settings.seed)
    if dataset.obs_a.shape[-1] != model.obs_dim:
        raise ValueError(
            f"the dataset's observations have size {dataset.obs_a.shape[-1]}, the model "
            f"expects {model.obs_dim}: build the model with obs_dim={dataset.obs_a.shape[-1]}"
        )
    dev = resolve_device(device)
    train_users = UserTensors.from_dataset(dataset).to(dev)
    val_users = UserTensors.from_dataset(val_dataset).to(dev)
    model.to(dev).train()
    _provenance(model, dataset)
    generator = torch.Generator().manual_seed(settings.seed)
    state_file = resume_path(checkpoint) if checkpoint else None

    if resume:
        if state_file is None or not state_file.is_file():
            raise FileNotFoundError(
                f"nothing to resume: {state_file} does not exist (run without --resume)"
            )
        state = load_payload(state_file, resume_state=True)
        _check_resumable(state, model, settings)
        model.comparison_obs = torch.zeros_like(state["state_dict"]["comparison_obs"])
        model.load_state_dict(state["state_dict"])
        model.to(dev)
    else:
        state = None
        if not warm_start:
            _reset_parameters(model, settings.seed)
            model.fit_normalization(train_users, settings.n_comparison, generator)

    optimizer = torch.optim.Adam(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    history: list[dict[str, float]] = []
    best = {"epoch": -1, "val_nll": math.inf, "val_accuracy": 0.0}
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    since_best, start_epoch, stopped = 0, 0, False
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        history, best = list(state["history"]), dict(state["best"])
        best_state = {k: v.to(dev) for k, v in state["best_state_dict"].items()}
        since_best, start_epoch = int(state["since_best"]), int(state["epoch"])
        stopped = bool(state["stopped_early"])
        log(f"resuming {model.kind} from epoch {start_epoch} ({state_file})")

    def save_best() -> None:
        if checkpoint is not None:
            payload = model_payload(model, extra)
            payload["state_dict"] = {k: v.cpu() for k, v in best_state.items()}
            payload.update(settings=dataclasses.asdict(settings), history=history, best=best)
            save_payload(payload, checkpoint)

    def save_state(epoch: int) -> None:
        if state_file is not None:
            payload = model_payload(model, extra)
            payload.update(
                settings=dataclasses.asdict(settings),
                optimizer=optimizer.state_dict(),
                generator=generator.get_state(),
                history=history,
                best=best,
                best_state_dict={k: v.cpu() for k, v in best_state.items()},
                since_best=since_best,
                epoch=epoch,
                stopped_early=stopped,
            )
            save_payload(payload, state_file)

    began = time.perf_counter()
    schedule = kl_schedule(settings, has_kl=model.has_kl)
    epoch = start_epoch
    if state is None:
        save_state(epoch)  # a run interrupted before its first periodic save can resume
    saved_epoch = epoch
    try:
        while epoch < settings.epochs and not stopped:
            kl_scale = kl_anneal(epoch, schedule.kl_delay, schedule.kl_warmup)
            order = torch.randperm(train_users.n_users, generator=generator)
            sums: dict[str, float] = {}
            n_batches = 0
            for start in range(0, len(order), settings.batch):
                batch = train_users.select(order[start : start + settings.batch].to(dev))
                loss, stats = model.training_loss(batch, generator, kl_scale)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
                optimizer.step()
                for key, value in {"loss": float(loss.detach()), **stats}.items():
                    sums[key] = sums.get(key, 0.0) + value
                n_batches += 1
            row = {
                "epoch": epoch,
                **{key: value / n_batches for key, value in sums.items()},
                **_validate(model, val_users, settings),
            }
            history.append(row)
            if on_epoch is not None:
                on_epoch(row)
            epoch += 1
            if row["val_nll"] < best["val_nll"]:
                best = {
                    "epoch": row["epoch"],
                    "val_nll": row["val_nll"],
                    "val_accuracy": row["val_accuracy"],
                }
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                since_best = 0
                save_best()
            else:
                since_best += 1
            annealed = epoch >= schedule.kl_delay + schedule.kl_warmup
            stopped = since_best >= settings.patience and annealed
            if epoch % settings.log_every == 0 or stopped or epoch == settings.epochs:
                log(
                    f"{model.kind} epoch {epoch}/{settings.epochs}  loss {row['loss']:.4f}  "
                    + (f"kl {row['kl']:.2f}  " if "kl" in row else "")
                    + f"val nll {row['val_nll']:.4f}  val acc {row['val_accuracy']:.3f}  "
                    f"best {best['val_nll']:.4f}@{best['epoch'] + 1}  "
                    f"{time.perf_counter() - began:.1f}s"
                )
            if epoch % settings.checkpoint_every == 0 or stopped or epoch == settings.epochs:
                save_state(epoch)
                saved_epoch = epoch
    except KeyboardInterrupt:
        if state_file is not None:
            log(
                f"interrupted in epoch {epoch + 1}; the resumable state of epoch {saved_epoch} "
                f"is in {state_file}"
            )
        raise
    if stopped:
        log(f"early stop: no better validation for {settings.patience} epochs")
    model.load_state_dict(best_state)
    model.eval()
    save_best()
    return TrainResult(
        best_epoch=int(best["epoch"]),
        best_val_nll=float(best["val_nll"]),
        best_val_accuracy=float(best["val_accuracy"]),
        epochs_run=epoch,
        stopped_early=stopped,
        seconds=time.perf_counter() - began,
        history=history,
    )
