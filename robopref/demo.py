"""``robopref demo``: the whole pipeline on the embedded default (PlatePlacement, two-modes).

The RLHF loop (``robopref loop``: VPL and BTL, each asking about its own policy's rollouts,
round after round) and meanwhile, in a process of its own, the oracle (``train-policy
--oracle``); then evaluate -> video, into ``runs/demo/`` (the evaluation as
``runs/demo/evaluate.json``) and ``videos/``. One recipe
for every task and population: ``robopref demo --env ID --population NAME|FILE`` changes
nothing else, but for what a task's interface needs (:data:`TASK_DEFAULTS`: TableSetting
runs on its place interface, with whole-episode segments and the budgets measured for it).
A step whose output already exists is skipped (an interrupted loop resumes
from its last finished round) unless ``--retrain`` is given; reward models and policies
shipped in ``policies/checkpoints/`` (made by this command with ``--retrain``) are used
instead of training when every option is at its default.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import robopref.policies
from robopref.env_kwargs import env_kwargs_option
from robopref.evaluate import EvaluateOptions, evaluate_command
from robopref.files import write_json_atomic
from robopref.loop.run import LoopOptions, run_loop
from robopref.options import config_option
from robopref.policies.train import TrainPolicyOptions, train_policy_command
from robopref.policy_video import VideoOptions, video_command

SHIPPED = Path(robopref.policies.__file__).resolve().parent / "checkpoints"
DEMO_ENV = "robopref/PlatePlacement-v0"
DEMO_POPULATION = "two-modes"
#: per task, what the demo's recipe changes for it, where the option is left at its default:
#: TableSetting on its place interface (one action per object: RL on it is quick, as VPL's
#: own rearrangement tasks), segments of a whole 3-step episode (4 states), the MLP decoder
#: (the bilinear one collapses there: every user gets one z) and PPO budgets for 3-step
#: episodes (the oracle reached 1.00 at 40k steps; see the README)
TASK_DEFAULTS: dict[str, dict[str, object]] = {
    "robopref/TableSetting-v0": {
        "env_kwargs": ["control=place"],
        "population": "arrangements",
        "segment": 4,
        "decoder": "mlp",
        "steps": 100_000,
        "scout_steps": 60_000,
    },
}
#: the options that shape a model: the shipped checkpoints serve only their defaults
MODEL_OPTIONS = ("env", "env_kwargs", "population", "seed", "steps", "scout_steps", "segment",
                 "answers", "decoder", "latent_dim", "kl_weight")  # fmt: skip


@dataclass
class DemoOptions:
    """Run the loop, the oracle, evaluation and the video into runs/demo/.

    The shipped checkpoints are used only for the embedded default (every option that
    shapes a model, from ``env`` to ``kl_weight``, at its default); anything else is
    trained from scratch with the same recipe.
    """

    env: str = field(default=DEMO_ENV, metadata={"help": "task id"})
    env_kwargs: list[str] = env_kwargs_option()
    population: str = field(default=DEMO_POPULATION, metadata={"help": "population name/file"})
    out: str = field(default="runs/demo", metadata={"help": "folder of everything it makes"})
    retrain: bool = field(default=False, metadata={"help": "redo every step from scratch"})
    steps: int = config_option(LoopOptions, "steps", "env steps per policy")
    scout_steps: int = config_option(
        LoopOptions, "scout_steps", "env steps of each method's scout policy over all rounds"
    )
    segment: int = config_option(LoopOptions, "segment", "steps per query segment")
    answers: int = config_option(LoopOptions, "answers", "answers per training user in all")
    users: int = field(default=20, metadata={"help": "new users in the evaluation"})
    decoder: str = config_option(
        LoopOptions, "decoder", "VPL decoder: bilinear, ideal, ideal-linear, ideal-distance or mlp"
    )
    latent_dim: int = config_option(LoopOptions, "latent_dim", "VPL: size of the user latent z")
    kl_weight: float = config_option(LoopOptions, "kl_weight", "VPL: weight of the KL term")
    seed: int = field(default=0, metadata={"help": "seed of every step"})
    device: str = field(default="auto", metadata={"help": "the oracle's device: auto, cpu, cuda"})
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


def _run_loop(options: DemoOptions, out: Path, shipped_dir: Path | None) -> None:
    """The loop's VPL and BTL reward models and policies in ``out`` (or the shipped ones)."""
    done = all((out / f"policy_{m}" / "model.zip").exists() for m in ("vpl", "btl"))
    if done and not options.retrain:
        print(f"demo: loop: {out}/policy_vpl and policy_btl exist, skipped (--retrain redoes it)")
        return
    if shipped_dir is not None and not options.retrain and (shipped_dir / "vpl.pt").exists():
        for name in ("vpl", "btl"):
            _step(f"reward {name}", out / f"{name}.pt", False, shipped_dir / f"{name}.pt")
            folder = out / f"policy_{name}"
            _step(f"policy {name}", folder / "model.zip", False, shipped_dir / folder.name)
        return
    state = out / "loop.json"
    resume = state.exists() and not options.retrain
    if resume and json.loads(state.read_text()).get("finished"):
        resume = False  # finished but its policies are gone: run it again
    print(f"demo: loop -> {out} ({'resuming' if resume else 'from scratch'})", flush=True)
    run_loop(
        LoopOptions(
            env=options.env, env_kwargs=options.env_kwargs, population=options.population,
            out=str(out), steps=options.steps, scout_steps=options.scout_steps,
            segment=options.segment,
            answers=options.answers, decoder=options.decoder, latent_dim=options.latent_dim,
            kl_weight=options.kl_weight, seed=options.seed, resume=resume, overwrite=not resume,
        )
    )  # fmt: skip


def with_task_defaults(options: DemoOptions) -> DemoOptions:
    """``options`` with the task's :data:`TASK_DEFAULTS` wherever an option is at its default."""
    defaults = DemoOptions()
    changes = {
        name: value
        for name, value in TASK_DEFAULTS.get(options.env, {}).items()
        if getattr(options, name) == getattr(defaults, name)
    }
    if changes:
        shown = ", ".join(f"{k}={v}" for k, v in changes.items())
        print(f"demo: {options.env}: the task's defaults {shown}", flush=True)
    return dataclasses.replace(options, **changes)


def demo_command(options: DemoOptions) -> int:
    """Run the pipeline; prints each step and the final table."""
    options = with_task_defaults(options)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    defaults = DemoOptions()
    embedded = all(getattr(options, n) == getattr(defaults, n) for n in MODEL_OPTIONS)
    shipped_dir = SHIPPED if embedded else None
    folder = out / "policy_oracle"
    shipped = shipped_dir / folder.name if shipped_dir else None
    # The oracle needs nothing from the loop: it trains in a process of its own meanwhile.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        oracle = None
        if _step("train-policy oracle", folder / "model.zip", options.retrain, shipped):
            oracle = pool.submit(
                train_policy_command,
                TrainPolicyOptions(
                    oracle=True, env=options.env, env_kwargs=options.env_kwargs,
                    population=options.population,
                    steps=options.steps, out=str(folder), name="oracle", seed=options.seed,
                    device=options.device, progress=False,
                    resume=(folder / "checkpoint.zip").exists() and not options.retrain,
                    overwrite=options.retrain,
                ),
            )  # fmt: skip
        _run_loop(options, out, shipped_dir)
        if oracle is not None:
            oracle.result()
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
