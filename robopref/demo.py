"""``robopref demo``: the whole pipeline on the embedded default (PlatePlacement, two-modes).

collect -> train-reward (VPL, BTL) -> train-policy (VPL, BTL, oracle) -> evaluate -> video,
into ``runs/demo/`` (the evaluation as ``runs/demo/evaluate.json``) and ``videos/``. A step
whose output already exists is skipped (so an interrupted demo resumes where it stopped)
unless ``--retrain`` is given; reward models and policies shipped in
``policies/checkpoints/`` are used instead of training when present.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import robopref.policies
from robopref.collect import CollectOptions, collect_command
from robopref.evaluate import EvaluateOptions, evaluate_command
from robopref.files import write_json_atomic
from robopref.policies.train import TrainPolicyOptions, train_policy_command
from robopref.policy_video import VideoOptions, video_command
from robopref.reward.train_command import TrainRewardOptions, train_reward_command

SHIPPED = Path(robopref.policies.__file__).resolve().parent / "checkpoints"
DEMO_ENV = "robopref/PlatePlacement-v0"
DEMO_POPULATION = "two-modes"
#: the collect settings that give a policy a reward it can act on (README, Policies): the
#: object held on before it is let go, set down near the population's goals, and pairs that
#: compare two ways of being at one spot. The collect defaults are the reward benchmark's.
POLICY_DATA = {
    "hesitant_share": 0.5,
    "careless_share": 0.2,
    "population_goal_share": 0.8,
    "near_share": 0.3,
}
#: per-task additions to POLICY_DATA. BlockSort's goal space is two zone centres, so its
#: experts never set the block down beside a zone and a learned reward is free to rise past
#: the zone's far edge (the policy then pushes the block out); the plate's experts already
#: aim at points all over the table.
POLICY_DATA_FOR_ENV: dict[str, dict[str, float]] = {
    "robopref/BlockSort-v0": {"missed_share": 0.3},
}


@dataclass
class DemoOptions:
    """Run collect, reward training, policy training and evaluation into runs/demo/.

    The shipped checkpoints are used only for the embedded default (every option that
    shapes a model, from ``env`` to ``kl_weight``, at its default); anything else is
    trained from scratch.
    """

    env: str = field(default=DEMO_ENV, metadata={"help": "task id"})
    population: str = field(default=DEMO_POPULATION, metadata={"help": "population name/file"})
    out: str = field(default="runs/demo", metadata={"help": "folder of everything it makes"})
    retrain: bool = field(default=False, metadata={"help": "redo every step from scratch"})
    steps: int = field(default=300_000, metadata={"help": "env steps per policy"})
    users: int = field(default=20, metadata={"help": "new users in the evaluation"})
    queries_per_user: int = field(
        default=48,
        metadata={
            "help": "answers per training user (more than collect's 16: a policy "
            "needs the reward's peak in the right place, not only good ranking)"
        },
    )
    decoder: str = field(
        default="bilinear",
        metadata={
            "help": "VPL decoder (mlp, with --latent-dim 8 --kl-weight 0.1, for continuous goals)"
        },
    )
    latent_dim: int = field(default=4, metadata={"help": "VPL: size of the user latent z"})
    kl_weight: float = field(default=1.0, metadata={"help": "VPL: weight of the KL term"})
    seed: int = field(default=0, metadata={"help": "seed of every step"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    video: str = field(
        default="videos/personalized.mp4",
        metadata={"help": "the VPL-vs-BTL video (MP4, GIF beside it); empty: no video"},
    )


def _step(name: str, target: Path, retrain: bool, shipped: Path | None = None) -> bool:
    """Whether to run step ``name``: its output ``target`` is missing (and nothing is
    shipped at ``shipped`` to copy there), or ``retrain``."""
    if target.exists() and not retrain:
        print(f"demo: {name}: {target} exists, skipped (--retrain redoes it)", flush=True)
        return False
    if shipped is not None and shipped.exists() and not retrain:
        if shipped.is_dir():  # a policy folder: its reward model is the one beside it now
            shutil.copytree(shipped, target.parent, dirs_exist_ok=True)
            meta_path = target.parent / "meta.json"
            meta = json.loads(meta_path.read_text())
            if meta.get("reward_path"):
                meta["reward_path"] = str(target.parent.parent / Path(meta["reward_path"]).name)
                write_json_atomic(meta_path, meta)
        else:
            shutil.copy2(shipped, target)
        print(f"demo: {name}: using the shipped {shipped}", flush=True)
        return False
    print(f"demo: {name} -> {target}", flush=True)
    return True


def demo_command(options: DemoOptions) -> int:
    """Run the pipeline; prints each step and the final table."""
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    data = out / "data.npz"
    defaults = DemoOptions()
    embedded = all(
        getattr(options, name) == getattr(defaults, name)
        for name in (
            "env",
            "population",
            "seed",
            "steps",
            "queries_per_user",
            "decoder",
            "latent_dim",
            "kl_weight",
        )
    )
    shipped_dir = SHIPPED if embedded else None
    if _step("collect", data, options.retrain):
        collect_command(
            CollectOptions(
                env=options.env,
                population=options.population,
                out=str(data),
                overwrite=True,  # _step runs it only when data.npz is missing or --retrain
                seed=options.seed,
                queries_per_user=options.queries_per_user,
                **{**POLICY_DATA, **POLICY_DATA_FOR_ENV.get(options.env, {})},
                progress=False,
            )
        )
    for kind in ("vpl", "btl"):
        path = out / f"{kind}.pt"
        shipped = shipped_dir / path.name if shipped_dir else None
        if _step(f"train-reward {kind}", path, options.retrain, shipped):
            train_reward_command(
                TrainRewardOptions(
                    data=str(data), model=kind, out=str(path), seed=options.seed,
                    device=options.device, overwrite=True, threads=1,
                    decoder=options.decoder, latent_dim=options.latent_dim,
                    kl_weight=options.kl_weight,
                )
            )  # fmt: skip
    for name in ("vpl", "btl", "oracle"):
        folder = out / f"policy_{name}"
        shipped = shipped_dir / folder.name if shipped_dir else None
        if _step(f"train-policy {name}", folder / "model.zip", options.retrain, shipped):
            train_policy_command(
                TrainPolicyOptions(
                    reward=str(out / f"{name}.pt"), data=str(data), oracle=name == "oracle",
                    env=options.env, population=options.population,
                    steps=options.steps, out=str(folder), name=name, seed=options.seed,
                    device=options.device, progress=False,
                    resume=(folder / "checkpoint.zip").exists() and not options.retrain,
                    overwrite=options.retrain,
                )
            )  # fmt: skip
    evaluate_command(
        EvaluateOptions(
            policy=[str(out / f"policy_{n}") for n in ("vpl", "btl", "oracle")],
            reward=str(out / "vpl.pt"), users=options.users, seed=options.seed,
            population=options.population, json=str(out / "evaluate.json"),
            overwrite=True,  # re-evaluated on every run
        )
    )  # fmt: skip
    video = options.video
    if video == defaults.video and not embedded:
        video = str(out / "personalized.mp4")  # videos/ holds the embedded demo's video only
    if video:
        video_command(
            VideoOptions(
                policy=str(out / "policy_vpl"), reward=str(out / "vpl.pt"),
                btl_policy=str(out / "policy_btl"), users=4, seed=options.seed,
                population=options.population, out=video, overwrite=True,
            )
        )  # fmt: skip
    print(f"demo: done in {time.perf_counter() - began:.0f} s; results in {out}/evaluate.json")
    return 0
