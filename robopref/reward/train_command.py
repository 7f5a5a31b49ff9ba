"""``robopref train-reward``: fit a BTL, DPL or VPL reward model to a preference dataset.

Users are split three ways, by user: ``test_fraction`` of them are held out for
``robopref eval-reward`` (never seen in training; the split is stored in the checkpoint so
evaluation uses the same users), ``val_fraction`` of the rest pick the best epoch and stop
training early, and the others are trained on. The split depends on ``split_seed`` only,
so runs with different ``seed`` values train on the same users.

Every input is checked before anything is written or deleted (the options, the dataset,
the split), so a refused ``--overwrite`` leaves the previous run and its ``OUT.resume``
as they were. Ctrl-C leaves ``OUT.resume`` at the last state saved (at the start and every
few epochs): the same command with ``--resume`` continues, and gives the uninterrupted
result. ``--tb`` logs each epoch's curves to ``tb/<OUT's name>/`` beside ``OUT``.

The options that set a library config take their defaults from it (``TrainSettings``,
``VPLConfig``; ``--hidden`` from ``VPLConfig``, the same for every model kind), so each
default is written once, in the library.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from robopref.data.dataset import PreferenceDataset
from robopref.files import check_writable
from robopref.options import config_option, config_values
from robopref.reward.basis import BasisConfig
from robopref.reward.checkpoint import load_payload
from robopref.reward.data import check_dataset, dataset_fingerprint
from robopref.reward.inputs import reward_view
from robopref.reward.registry import MODEL_KINDS, build_model
from robopref.reward.selection import AUTO, select_vpl
from robopref.reward.training import TrainSettings, kl_schedule, resume_path, train
from robopref.reward.vpl import VPLConfig
from robopref.tensorboard import summary_writer, tb_option, tensorboard_dir


@dataclass
class TrainRewardOptions:
    """Train a reward model on a preference dataset, validate on held-out users, save it."""

    data: str = field(default="data/plate.npz", metadata={"help": "preference dataset (.npz)"})
    model: str = field(
        default="vpl",
        metadata={
            "help": "model kind: vpl, btl, dpl, lowrank (LoRe/PAL basis rewards) or mixture "
            "(K BTL rewards by EM)"
        },
    )
    input: str = field(
        default="features",
        metadata={"help": "what the reward reads: features (info['features']) or observations"},
    )
    out: str = field(
        default="runs/reward/vpl.pt",
        metadata={"help": "checkpoint path (the resumable state goes to PATH.resume)"},
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    seed: int = config_option(TrainSettings, "seed", "seed of initialisation and batches")
    epochs: int = config_option(TrainSettings, "epochs", "most passes over the training users")
    batch: int = config_option(TrainSettings, "batch", "users per gradient step (all their pairs)")
    lr: float = config_option(TrainSettings, "lr", "Adam learning rate")
    weight_decay: float = config_option(TrainSettings, "weight_decay", "Adam weight decay")
    patience: int = config_option(
        TrainSettings, "patience", "stop after this many epochs without a better validation"
    )
    latent_dim: int = config_option(VPLConfig, "latent_dim", "VPL: size of the user latent z")
    hidden: tuple[int, ...] = config_option(VPLConfig, "hidden", "hidden layer widths of the MLPs")
    features: int = config_option(
        VPLConfig, "features", "VPL: state features D of the decoder (and encoder)"
    )
    kl_weight: float = config_option(
        VPLConfig, "kl_weight", "VPL: weight of KL(q(z | context) || N(0, I))"
    )
    free_nats: float = config_option(
        VPLConfig, "free_nats", "VPL: nats of KL per user left unpenalised (free bits)"
    )
    swap_guard: float = config_option(
        VPLConfig,
        "swap_guard",
        "VPL: weight of the guard against posterior collapse (each user's answers must be "
        "explained better by their own z than by other users'; 0: off; robopref.reward.vpl)",
    )
    components: int = config_option(
        BasisConfig, "components", "lowrank, mixture: basis rewards (mixture components) K"
    )
    kl_delay: int = config_option(
        TrainSettings, "kl_delay", "VPL: epochs without the KL term before its warm-up"
    )
    kl_warmup: int = config_option(
        TrainSettings, "kl_warmup", "VPL: epochs over which the KL weight ramps up from 0"
    )
    max_context: int = config_option(
        VPLConfig, "max_context", "VPL: largest training context (0: all but one pair)"
    )
    decoder: str = config_option(
        VPLConfig,
        "decoder",
        "VPL decoder: bilinear (fast), ideal (ideal point), ideal-linear (ideal point in a "
        "linear projection of the state), ideal-distance (the same, reward falling with the "
        "distance: a sharp peak), mlp on [s, z], or auto (chosen from the answers: "
        "robopref.reward.selection)",
    )
    fourier: int = config_option(
        VPLConfig, "fourier", "VPL: random Fourier features of the state (0: none)"
    )
    fourier_scale: float = config_option(
        VPLConfig, "fourier_scale", "VPL: scale of the Fourier frequencies"
    )
    test_fraction: float = field(
        default=0.2, metadata={"help": "share of users held out for eval-reward"}
    )
    val_fraction: float = config_option(
        TrainSettings, "val_fraction", "share of the other users used for early stopping"
    )
    split_seed: int = field(default=0, metadata={"help": "seed of the user split"})
    resume: bool = field(
        default=False, metadata={"help": "continue an interrupted run from OUT.resume"}
    )
    overwrite: bool = field(
        default=False, metadata={"help": "replace an existing checkpoint at OUT"}
    )
    threads: int = field(
        default=1,
        metadata={
            "help": "torch CPU threads (0: torch's default, one per core, which collapses when "
            "another job shares the cores; 1 is within 2x of idle beside one)"
        },
    )
    tb: bool = field(
        default=tb_option().default,
        metadata={
            "help": "log each epoch's train loss, KL, validation NLL and accuracy to "
            "TensorBoard in tb/<OUT's name> beside OUT (--out runs/reward/vpl.pt: "
            "runs/reward/tb/vpl/; --overwrite replaces its curves); needs the tensorboard "
            'package (pip install "robopref[tb]"); view with tensorboard --logdir '
            "runs/reward/tb"
        },
    )


def model_config(options: TrainRewardOptions) -> dict[str, object]:
    """The model-config fields that the options set for the chosen model kind (without
    ``decoder`` when it is ``auto``: the selection sets it)."""
    config = config_values(MODEL_KINDS[options.model][1], options)
    config["hidden"] = tuple(options.hidden)  # argparse gives a list; configs store tuples
    if options.model == "vpl" and options.decoder == AUTO:
        del config["decoder"]
    return config


def train_settings(options: TrainRewardOptions) -> TrainSettings:
    """The training settings the options set (no KL schedule for models without a latent)."""
    has_kl = MODEL_KINDS[options.model][0].has_kl
    values = config_values(TrainSettings, options)
    if not has_kl:  # --kl-delay and --kl-warmup are VPL's: other models neither read nor check them
        del values["kl_delay"], values["kl_warmup"]
    return kl_schedule(TrainSettings(**values), has_kl)


def _held_out(fraction: float, n_users: int) -> int:
    """How many of ``n_users`` users a split of ``fraction`` holds out (as ``split_users``)."""
    return max(1, int(round(fraction * n_users)))


def check_fractions(test_fraction: float, val_fraction: float) -> None:
    """Refuse, by option name, a ``--test-fraction`` or ``--val-fraction`` outside (0, 1)."""
    for flag, value, default in (
        ("--test-fraction", test_fraction, TrainRewardOptions.test_fraction),
        ("--val-fraction", val_fraction, TrainSettings.val_fraction),
    ):
        if not 0.0 < value < 1.0:  # NaN fails too
            raise ValueError(
                f"{flag} {value} must be a share of the users strictly between 0 and 1 "
                f"(default {default})"
            )


def split_three_ways(
    dataset: PreferenceDataset, test_fraction: float, val_fraction: float, seed: int
) -> tuple[PreferenceDataset, PreferenceDataset, list[int]]:
    """``(train, val, test_users)``: the held-out test users as indices into ``dataset``.

    Refuses, naming the option, fractions outside (0, 1) and fractions that leave no user
    to train on or to validate with.
    """
    check_fractions(test_fraction, val_fraction)
    n = dataset.n_users
    if n < 3:
        raise ValueError(
            f"the dataset has {n} users: at least 3 are needed (training, validation and "
            "held-out users): collect more with `robopref collect --users N`"
        )
    n_test = _held_out(test_fraction, n)
    if n - n_test < 2:
        raise ValueError(
            f"--test-fraction {test_fraction} holds out {n_test} of the dataset's {n} users, "
            f"leaving {n - n_test} for training and validation (2 or more are needed): use a "
            f"smaller --test-fraction (at most {(n - 2.5) / n:.2f} here; default 0.2)"
        )
    n_val = _held_out(val_fraction, n - n_test)
    if n - n_test - n_val < 1:
        raise ValueError(
            f"--val-fraction {val_fraction} holds out all {n - n_test} users left after the test "
            "users for validation, leaving none to train on: use a smaller --val-fraction "
            f"(default {TrainSettings.val_fraction})"
        )
    rest, test = dataset.split_users(test_fraction, seed)
    train_set, val = rest.split_users(val_fraction, seed)
    return train_set, val, [int(u) for u in test.meta["parent_users"]]


def tensorboard_folder(out: str | Path) -> Path:
    """Where ``--tb`` logs the run writing ``out``: ``runs/reward/vpl.pt`` logs to
    ``runs/reward/tb/vpl``."""
    out = Path(out)
    return out.parent / "tb" / out.stem


def _epoch_logger(writer: Any) -> Callable[[dict[str, float]], None]:
    """Write an epoch's history row to TensorBoard (step: the epoch, counted from 1)."""
    names = {
        "loss": "train/loss",
        "kl": "train/kl",
        "val_nll": "val/nll",
        "val_accuracy": "val/accuracy",
    }

    def log_epoch(row: dict[str, float]) -> None:
        step = int(row["epoch"]) + 1
        for key, tag in names.items():
            if key in row:
                writer.add_scalar(tag, float(row[key]), step)
        writer.flush()

    return log_epoch


def _resumed_config(out: Path) -> dict[str, Any] | None:
    """The model config an interrupted ``--decoder auto`` run at ``out`` had chosen (its
    resumable state records it), or None when it stopped before choosing."""
    state = resume_path(out)
    if not state.is_file():
        return None
    return dict(load_payload(state, resume_state=True)["config"])


def train_reward_command(options: TrainRewardOptions) -> int:
    """Run ``robopref train-reward`` with ``options``."""
    if options.model not in MODEL_KINDS:
        raise ValueError(f"--model {options.model!r} must be one of {sorted(MODEL_KINDS)}")
    out = Path(options.out)
    if options.resume and options.overwrite:
        raise ValueError(
            "--resume continues the run at --out and --overwrite replaces it: pass one of them"
        )
    if not options.resume and not options.overwrite and (out.exists() or resume_path(out).exists()):
        raise ValueError(
            f"{out} already exists: pass --resume to continue that run, --overwrite to replace "
            "it, or another --out"
        )
    check_writable(out, "--out")
    if options.threads < 0:
        raise ValueError(
            f"--threads {options.threads} is negative: "
            "pass 0 for torch's default or a positive number"
        )
    # Every input is checked before anything is deleted or trained: the options (their
    # library configs refuse NaN and out-of-range values), the dataset and its split.
    check_fractions(options.test_fraction, options.val_fraction)
    settings = train_settings(options)
    config = model_config(options)
    auto = options.model == "vpl" and options.decoder == AUTO
    if options.decoder == AUTO and options.model != "vpl":
        raise ValueError("--decoder auto chooses a VPL decoder: use it with --model vpl")
    MODEL_KINDS[options.model][1](**config)  # the config's own checks, before the data loads
    tb_dir = tensorboard_dir(options.tb, tensorboard_folder(out))
    dataset = reward_view(PreferenceDataset.load(options.data), options.input)
    train_set, val_set, test_users = split_three_ways(
        dataset, options.test_fraction, options.val_fraction, options.split_seed
    )
    check_dataset(train_set)
    check_dataset(val_set)
    if options.threads > 0:
        torch.set_num_threads(options.threads)
    if options.overwrite:  # a later --resume must not continue the replaced run
        resume_path(out).unlink(missing_ok=True)
        if tb_dir is not None:  # nor its curves be drawn under the new run's
            for old in Path(tb_dir).glob("events.out.tfevents.*"):
                old.unlink()
    resumed_choice = _resumed_config(out) if auto and options.resume else None
    if resumed_choice is not None:  # the interrupted run had chosen: keep its choice
        config, auto = resumed_choice, False
    torch.manual_seed(options.seed)
    # with auto, a placeholder decoder until the selection builds the candidates
    model = build_model(
        options.model,
        dataset.obs_a.shape[-1],
        {"decoder": "bilinear", **config} if auto else config,
    )
    extra = {
        "split": {
            "test_fraction": options.test_fraction,
            "val_fraction": options.val_fraction,
            "split_seed": options.split_seed,
            "n_users": dataset.n_users,
            "test_users": test_users,
            "dataset_fingerprint": dataset_fingerprint(dataset),
        },
        "options": dataclasses.asdict(options),
    }
    print(
        f"train-reward: {options.model} on {options.data} ({dataset.env_id}): "
        f"{train_set.n_users} training, {val_set.n_users} validation, {len(test_users)} "
        f"held-out users; device {options.device}"
    )
    writer = summary_writer(tb_dir)
    on_epoch = None if writer is None else _epoch_logger(writer)
    try:
        if auto:

            def fit(model: Any, data: Any, fit_settings: TrainSettings, warm: bool) -> Any:
                # screening fits keep no checkpoint; the winner's last fit writes OUT
                return train(
                    model, data, val_dataset=val_set, settings=fit_settings,
                    checkpoint=out if warm else None, device=options.device,
                    extra=extra if warm else None, log=None if warm else lambda _line: None,
                    warm_start=warm, on_epoch=on_epoch if warm else None,
                )  # fmt: skip

            model, report = select_vpl(train_set, config, settings, fit, log=print)
            print(report.table())
            result = report.final_fit
        else:
            result = train(
                model,
                train_set,
                val_dataset=val_set,
                settings=settings,
                checkpoint=out,
                resume=options.resume,
                device=options.device,
                extra=extra,
                on_epoch=on_epoch,
            )
    finally:
        if writer is not None:
            writer.close()
    if tb_dir is not None:
        print(f"train-reward: TensorBoard curves in {tb_dir} (tensorboard --logdir {tb_dir})")
    print(
        f"train-reward: best epoch {result.best_epoch + 1} of {result.epochs_run}: validation "
        f"cross-entropy {result.best_val_nll:.4f}, accuracy {result.best_val_accuracy:.3f}; "
        f"{result.seconds:.1f} s; saved {out}"
    )
    return 0
