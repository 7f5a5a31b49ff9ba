"""``robopref demo``: the whole pipeline on the embedded default (PlatePlacement, two-modes).

The RLHF loop (``robopref loop``: VPL and BTL, each asking about its own policy's rollouts,
round after round) and meanwhile, in a process of its own, the oracle (``train-policy
--oracle``); then evaluate -> video, into ``runs/demo/`` (the evaluation as
``runs/demo/evaluate.json``) and its video (``runs/demo/personalized.mp4`` and ``.gif``;
``--video`` puts it elsewhere). One recipe
for every task and population: ``robopref demo --env ID --population NAME|FILE`` changes
nothing else, but for what a task's interface needs (its spec's ``demo_defaults``: TableSetting
runs on its place interface, with whole-episode segments and the budgets measured for it).
A step whose output already exists is skipped (an interrupted loop resumes
from its last finished round) unless ``--retrain`` is given; reward models and policies
shipped in ``policies/checkpoints/`` (made by this command with ``--retrain``) are used
instead of training when every option is at its default.

Every option is checked before any step runs. ``--out`` must be new, empty or a demo's own
folder (it holds only what the demo makes); anything else in it is refused, ``--overwrite``
or not. ``--video`` is relative to the working folder (``{out}`` in it stands for
``--out``): a file there that this demo did not write (``demo.json`` in ``--out`` records
what it wrote) is replaced only with ``--overwrite``. The README's video is made with
``robopref demo --video videos/personalized.mp4 --overwrite``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import robopref.policies
from robopref.data.rollouts import make_env
from robopref.env_kwargs import env_kwargs_option, parse_env_kwargs
from robopref.files import check_writable, write_json_atomic
from robopref.loop.run import (
    LoopOptions,
    check_loop_values,
    end_workers,
    refuse_foreign_entries,
    run_loop,
)
from robopref.options import DEFAULT_ENV, DEFAULT_POPULATION, config_option, device_option
from robopref.policies.evaluate_command import EvaluateOptions, evaluate_command
from robopref.policies.guided import compose_guided
from robopref.policies.train import TrainPolicyOptions, check_train_options, train_policy_command
from robopref.reward.nets import resolve_device
from robopref.reward.peak import candidate_goals
from robopref.tasks import TASKS
from robopref.tensorboard import tb_option
from robopref.users.population import GOAL_SPACE
from robopref.video.policies import VideoOptions, video_command

SHIPPED = Path(robopref.policies.__file__).resolve().parent / "checkpoints"
#: the options that shape a model: the shipped checkpoints serve only their defaults
MODEL_OPTIONS = ("env", "env_kwargs", "population", "seed", "steps", "scout_steps", "segment",
                 "answers", "decoder", "latent_dim", "kl_weight")  # fmt: skip
#: the loop's methods the demo runs
DEMO_METHODS = ("vpl", "btl")
#: what the demo writes in --out beside the loop's round folders and temporaries
DEMO_NAMES = ("loop.json", "demo.json", "evaluate.json", "evaluate.png", "policy_oracle",
              "policy_guided",
              "personalized.mp4", "personalized.gif",
              *(f"{m}{ext}" for m in DEMO_METHODS for ext in (".pt", ".npz")),
              *(f"policy_{m}" for m in DEMO_METHODS))  # fmt: skip
#: the record of what this demo wrote (so a later run may replace its own video only)
RECORD = "demo.json"


@dataclass
class DemoOptions:
    """Run the loop, the oracle, evaluation and the video into runs/demo/.

    The shipped checkpoints are used only for the embedded default (every option that
    shapes a model, from ``env`` to ``kl_weight``, at its default); anything else is
    trained from scratch with the same recipe.
    """

    env: str = field(default=DEFAULT_ENV, metadata={"help": "task id"})
    env_kwargs: list[str] = env_kwargs_option()
    population: str = field(default=DEFAULT_POPULATION, metadata={"help": "population name/file"})
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
    device: str = device_option(
        "every stage's device (the loop's reward models, the oracle, evaluation, video; "
        "PPO stays on the CPU)"
    )
    video: str = field(
        default="{out}/personalized.mp4",
        metadata={
            "help": "the VPL-vs-BTL video (MP4, GIF beside it), relative to the working folder "
            "({out} stands for --out; videos/personalized.mp4 is the README's); empty: no video"
        },
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "replace an existing --video (and GIF) that this demo did not write"},
    )
    tb: bool = tb_option()


def _step(name: str, target: Path, retrain: bool, shipped: Path | None = None) -> bool:
    """Whether to run step ``name``: its output ``target`` is missing (and nothing is
    shipped at ``shipped`` to copy there), or ``retrain``."""
    if target.exists() and not retrain:
        print(f"demo: {name}: {target} exists, skipped (--retrain redoes it)", flush=True)
        return False
    if shipped is not None and shipped.exists() and not retrain:
        if shipped.is_dir():  # a policy folder: it records its reward model as ../NAME.pt
            shutil.copytree(shipped, target.parent, dirs_exist_ok=True)
        else:
            shutil.copy2(shipped, target)
        print(f"demo: {name}: using the shipped {shipped}", flush=True)
        return False
    print(f"demo: {name} -> {target}", flush=True)
    return True


def _loop_options(options: DemoOptions, out: Path, resume: bool) -> LoopOptions:
    return LoopOptions(
        env=options.env, env_kwargs=options.env_kwargs, population=options.population,
        out=str(out), steps=options.steps, scout_steps=options.scout_steps,
        segment=options.segment, methods=list(DEMO_METHODS),
        answers=options.answers, decoder=options.decoder, latent_dim=options.latent_dim,
        kl_weight=options.kl_weight, seed=options.seed, resume=resume, overwrite=not resume,
        tb=options.tb, device=options.device,
    )  # fmt: skip


def _run_loop(options: DemoOptions, out: Path, shipped_dir: Path | None, own: tuple) -> None:
    """The loop's VPL and BTL reward models and policies in ``out`` (or the shipped ones)."""
    done = all((out / f"policy_{m}" / "model.zip").exists() for m in DEMO_METHODS)
    if done and not options.retrain:
        print(f"demo: loop: {out}/policy_vpl and policy_btl exist, skipped (--retrain redoes it)")
        return
    if shipped_dir is not None and not options.retrain and (shipped_dir / "vpl.pt").exists():
        for name in DEMO_METHODS:
            _step(f"reward {name}", out / f"{name}.pt", False, shipped_dir / f"{name}.pt")
            folder = out / f"policy_{name}"
            _step(f"policy {name}", folder / "model.zip", False, shipped_dir / folder.name)
        return
    resume = _loop_resumes(options, out)
    print(f"demo: loop -> {out} ({'resuming' if resume else 'from scratch'})", flush=True)
    run_loop(_loop_options(options, out, resume), others=own)


def _loop_resumes(options: DemoOptions, out: Path) -> bool:
    """Whether the demo's loop continues the unfinished loop in ``out``."""
    state = out / "loop.json"
    if not state.exists() or options.retrain:
        return False
    try:
        return not json.loads(state.read_text()).get("finished")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False  # damaged: the loop starts over (--overwrite)


def video_path(options: DemoOptions) -> Path | None:
    """The MP4 ``--video`` names (``{out}`` replaced by ``--out``), None for no video."""
    if not options.video:
        return None
    path = Path(options.video.replace("{out}", options.out))
    if path.suffix == "":
        path = path.with_suffix(".mp4")
    if path.suffix.lower() != ".mp4":
        raise ValueError(
            f"--video {options.video!r} must end in .mp4 or have no suffix (the GIF goes "
            "beside it); pass --video '' for no video"
        )
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _own_names(out: Path, video: Path | None) -> tuple[str, ...]:
    """The names in ``out`` the demo writes: its own, and its videos' that went there (this
    run's and the ones ``demo.json`` records)."""
    names = list(DEMO_NAMES)
    videos = [Path(p) for p in _read_record(out).get("video", {})]
    if video is not None:
        videos += [video, video.with_suffix(".gif")]
    names += [p.name for p in videos if p.parent.resolve() == out.resolve()]
    return tuple(names)


def _read_record(out: Path) -> dict:
    """``out/demo.json`` (what the demo wrote: ``{"video": {path: sha256}, "seconds": {stage:
    wall seconds}}``); damaged: {}."""
    try:
        record = json.loads((out / RECORD).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    if not isinstance(record, dict) or not isinstance(record.get("video", {}), dict):
        return {}
    return record


def check_demo_options(options: DemoOptions) -> tuple[str, ...]:
    """Every refusal of the demo and of the steps it will run, before any of them runs:
    the loop's and the evaluation's options, the oracle's (when it trains), ``--device``,
    an ``--out`` or ``--video`` that cannot be written, an ``--out`` holding what the demo
    does not make, a ``--video`` it did not write (without ``--overwrite``). Returns the
    names in ``--out`` that are the demo's own."""
    if options.users < 1:
        raise ValueError(f"--users {options.users}: the evaluation needs at least 1 new user")
    resolve_device(options.device)
    out = Path(options.out)
    check_writable(out / "loop.json", "--out")
    check_loop_values(_loop_options(options, out, False))
    video = video_path(options)
    own = _own_names(out, video)
    refuse_foreign_entries(out, own, "is not a demo's folder")
    if not options.retrain:
        check_same_run(options, out)
    if video is not None:
        check_writable(video, "--video")
        _check_video(video, out, options.overwrite)
    return own


#: the oracle's options that shape it (the rest of MODEL_OPTIONS belong to the loop; on
#: tasks with a skill it trains on the goal space, whatever the population)
ORACLE_OPTIONS = ("env", "env_kwargs", "seed", "steps")


def _recorded_options(path: Path) -> dict:
    try:
        recorded = json.loads(path.read_text()).get("options", {})
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _recorded_env(path: Path) -> str:
    try:
        return str(json.loads(path.read_text()).get("env_id", ""))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return ""


def check_same_run(options: DemoOptions, out: Path) -> None:
    """Refuse to reuse the steps already in ``out`` when they were made with other model
    options (another population, task, seed, budget...): the demo skips a step whose output
    exists, and would otherwise evaluate the old policies on the new population."""
    records = {
        out / "loop.json": MODEL_OPTIONS,
        **{out / f"policy_{m}" / "meta.json": MODEL_OPTIONS for m in DEMO_METHODS},
        out / "policy_oracle" / "meta.json": ORACLE_OPTIONS,
    }
    for path, names in records.items():
        recorded = _recorded_options(path)
        if recorded.get("env") == "":  # train-policy's default: the env its meta names
            recorded["env"] = _recorded_env(path)
        changed = [
            f"--{n.replace('_', '-')} {recorded[n]!r} there, {getattr(options, n)!r} now"
            for n in names
            if n in recorded and recorded[n] != getattr(options, n)
        ]
        if changed:
            raise ValueError(
                f"--out {out} holds a demo made with other options ({path.relative_to(out)}: "
                f"{'; '.join(changed)}): the demo would reuse it. Give this run its own "
                "--out, or pass --retrain to replace that demo"
            )


def _check_video(video: Path, out: Path, overwrite: bool) -> None:
    """Refuse (without ``overwrite``) a video or GIF at ``video`` the demo in ``out`` did not
    write: one outside ``out`` must be recorded in ``out/demo.json``, unchanged since."""
    files = [p for p in (video, video.with_suffix(".gif")) if p.exists()]
    if not files or overwrite or video.parent.resolve() == out.resolve():
        return
    written = _read_record(out).get("video", {})
    if all(written.get(str(p.resolve())) == _digest(p) for p in files):
        return
    raise ValueError(
        f"--video {video}: {' and '.join(str(p) for p in files)} exists and was not written by "
        f"the demo in {out} (or was changed since): pass --overwrite to replace it, choose "
        "another --video, or --video '' for no video"
    )


def _record_video(out: Path, video: Path) -> None:
    record = _read_record(out)
    record["video"] = {
        str(p.resolve()): _digest(p) for p in (video, video.with_suffix(".gif")) if p.exists()
    }
    write_json_atomic(out / RECORD, record)


def _record_seconds(out: Path, seconds: dict[str, float]) -> None:
    """This run's wall seconds per stage into ``demo.json`` (``benchmarks/demo_profile.py``
    reads them with the loop's per-round stages)."""
    record = _read_record(out)
    record["seconds"] = {stage: round(value, 1) for stage, value in seconds.items()}
    write_json_atomic(out / RECORD, record)


def _demo_defaults(env_id: str) -> dict[str, object]:
    spec = TASKS.get(env_id)  # an unknown task is refused with the other options
    return dict(spec.demo_defaults) if spec is not None else {}


def with_task_defaults(options: DemoOptions) -> DemoOptions:
    """``options`` with its task's ``demo_defaults`` (robopref.tasks) wherever an option is at
    its default."""
    defaults = DemoOptions()
    changes = {
        name: value
        for name, value in _demo_defaults(options.env).items()
        if getattr(options, name) == getattr(defaults, name)
    }
    if changes:
        shown = ", ".join(f"{k}={v}" for k, v in changes.items())
        print(f"demo: {options.env}: the task's defaults {shown}", flush=True)
    return dataclasses.replace(options, **changes)


def has_skill(options: DemoOptions) -> bool:
    """Whether the task's oracle is a goal-conditioned skill over its whole goal space, which
    a guided policy commands to the learned reward's peak (goals that are table points or
    zones: :func:`robopref.reward.peak.candidate_goals`)."""
    env, _ = make_env(options.env, parse_env_kwargs(options.env_kwargs))
    try:
        return candidate_goals(env) is not None
    finally:
        env.close()


def _oracle_options(options: DemoOptions, folder: Path) -> TrainPolicyOptions:
    # The skill reads no user's goal: goals from the whole goal space. Given the user's true
    # goal it is the oracle (the upper bound); given the reward's peak, the guided policy.
    return TrainPolicyOptions(
        oracle=True, env=options.env, env_kwargs=options.env_kwargs,
        population=GOAL_SPACE if has_skill(options) else options.population,
        steps=options.steps, out=str(folder), name="oracle", seed=options.seed,
        device=options.device, progress=False,
        resume=(folder / "checkpoint.zip").exists() and not options.retrain,
        overwrite=options.retrain, tb=options.tb,
    )  # fmt: skip


def demo_command(options: DemoOptions) -> int:
    """Run the pipeline; prints each step and the final table."""
    options = with_task_defaults(options)
    own = check_demo_options(options)
    out = Path(options.out)
    began = time.perf_counter()
    defaults = DemoOptions()
    embedded = all(getattr(options, n) == getattr(defaults, n) for n in MODEL_OPTIONS)
    shipped_dir = SHIPPED if embedded else None
    folder = out / "policy_oracle"
    shipped = shipped_dir / folder.name if shipped_dir else None
    oracle_trains = options.retrain or not (folder / "model.zip").exists() and not (
        shipped is not None and shipped.exists())  # fmt: skip
    if oracle_trains:
        check_train_options(_oracle_options(options, folder))
    out.mkdir(parents=True, exist_ok=True)
    # The oracle needs nothing from the loop: it trains in a process of its own meanwhile.
    pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    seconds: dict[str, float] = {}
    try:
        oracle = None
        if _step("train-policy oracle", folder / "model.zip", options.retrain, shipped):
            oracle = pool.submit(train_policy_command, _oracle_options(options, folder))

            def oracle_done(_: object) -> None:
                seconds["oracle (beside the loop)"] = time.perf_counter() - began
                # its process ends with its job: an idle worker would print a traceback on
                # Ctrl-C
                pool.shutdown(wait=False)

            oracle.add_done_callback(oracle_done)
        _run_loop(options, out, shipped_dir, own)
        seconds["loop"] = time.perf_counter() - began
        if oracle is not None:
            oracle.result()
    except BaseException:  # Ctrl-C, a kill or an error: no oracle process is left behind
        end_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True)
    lap = time.perf_counter()
    names = ["vpl", "btl", "oracle"]
    if has_skill(options):
        compose_guided(out / "policy_oracle", out / "vpl.pt", out / "policy_guided")
        names.insert(1, "guided")
    evaluate_command(
        EvaluateOptions(
            policy=[str(out / f"policy_{n}") for n in names],
            reward=str(out / "vpl.pt"), users=options.users, seed=options.seed,
            population=options.population, json=str(out / "evaluate.json"),
            overwrite=True,  # the demo's own, in its --out: re-evaluated on every run
            device=options.device,
        )
    )  # fmt: skip
    seconds["evaluation"] = time.perf_counter() - lap
    lap = time.perf_counter()
    video = video_path(options)
    if video is not None:
        video_command(
            VideoOptions(
                policy=str(out / "policy_vpl"), reward=str(out / "vpl.pt"),
                btl_policy=str(out / "policy_btl"), users=4, seed=options.seed,
                population=options.population, out=str(video),
                overwrite=True,  # checked before any step: the demo's own, or --overwrite
                device=options.device,
            )
        )  # fmt: skip
        _record_video(out, video)
        seconds["video"] = time.perf_counter() - lap
    seconds["total"] = time.perf_counter() - began
    _record_seconds(out, seconds)
    shown = ", ".join(f"{stage} {value:.0f} s" for stage, value in seconds.items())
    print(f"demo: done ({shown}); results in {out}/evaluate.json")
    return 0
