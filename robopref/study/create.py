"""``robopref study create``: a study folder, its rendered clips and one private link each.

The candidate queries are pairs of segments of goal-agnostic episodes (the default
behaviour mix of :mod:`robopref.data.queries`, no goal marker drawn), rendered while they are
collected and cut into one WebM clip per segment. By default a segment is the whole
episode: what a person can judge at a glance ("did it put the plate where I want it?").
A reward model's logits sum over steps; the study puts them on the scale of the segments
the model was trained on (:func:`robopref.reward.typed_asking.logit_scale`), since a person
is no surer of a long clip than of a short one.

Every check (the reward model, the policies and their task, the counts, the output folder)
runs before any episode is collected; the folder is written once and a second ``create``
into it is refused. It is built under a hidden sibling name (``.NAME.creating-XXXX``, mode
0700) and renamed into place when complete: a killed ``create`` leaves no half-built study
under the name asked for (the next ``create`` of that name removes the hidden leftover).
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robopref.data.queries import build_query_pool
from robopref.data.rollouts import BehaviourMix, collect_rollouts, make_env
from robopref.env_kwargs import check_env_kwargs, env_kwargs_option, parse_env_kwargs
from robopref.files import check_writable
from robopref.options import DEFAULT_ENV
from robopref.reward import load_reward_model
from robopref.reward.active import STRATEGIES  # the study asks as evaluation does
from robopref.study.spec import (
    CLIPS_DIR,
    LINKS_NAME,
    SPEC_NAME,
    StudyPool,
    StudySpec,
    end_state_name,
    half_built,
    half_built_message,
    segment_clip_name,
    write_private,
)
from robopref.study.store import DB_NAME, StudyStore
from robopref.video.writers import HOLD_SECONDS, write_webm

#: clip size: what the env benchmark's render fps is measured at
CLIP_WIDTH, CLIP_HEIGHT = 320, 240


@dataclass
class StudyCreateOptions:
    """Create a study: candidate clips, a database and one private link per participant."""

    out: str = field(metadata={"help": "the study folder to create (must not exist)"})
    env: str = field(
        default="", metadata={"help": f"task id (default: the reward model's, else {DEFAULT_ENV})"}
    )
    env_kwargs: list[str] = env_kwargs_option()
    reward: str = field(
        default="",
        metadata={"help": "a VPL reward model (.pt): needed by --strategy active and --policy"},
    )
    policy: str = field(
        default="",
        metadata={"help": "a VPL policy folder trained on --reward: shown as 'your robot'"},
    )
    btl_policy: str = field(
        default="", metadata={"help": "a BTL policy folder: 'your robot' shows it beside VPL's"}
    )
    btl_reward: str = field(
        default="", metadata={"help": "the BTL policy's reward model (default: its meta.json's)"}
    )
    participants: int = field(default=8, metadata={"help": "private links to create"})
    queries: int = field(default=8, metadata={"help": "queries per participant"})
    strategy: str = field(
        default="random", metadata={"help": f"how queries are chosen: {' or '.join(STRATEGIES)}"}
    )
    episodes: int = field(default=24, metadata={"help": "episodes to cut candidate clips from"})
    pairs: int = field(default=64, metadata={"help": "candidate pairs in the pool"})
    segment: int = field(default=0, metadata={"help": "states per segment (0: the whole episode)"})
    base_url: str = field(
        default="http://127.0.0.1:8000",
        metadata={"help": "the address the links point at (where `study serve` listens)"},
    )
    seed: int = field(default=0, metadata={"help": "seed of the episodes, pairs and orders"})
    questions: str = field(
        default="about-equal",
        metadata={
            "help": "question types asked in turn, comma-separated: pair, about-equal, "
            "end-state, ranking:3, ranking:4, rating"
        },
    )
    practice: int = field(
        default=0, metadata={"help": "practice queries first (never recorded as data)"}
    )
    file: str = field(
        default="",
        metadata={
            "help": "a study file (YAML): title, task, consent, practice, questions, final "
            "policies, and any of these settings (docs/guide/study.md)"
        },
    )


def _question_names(options: StudyCreateOptions) -> list[str]:
    """The ``--questions`` types, checked, as study.json lists them."""
    from robopref.study.questions import parse_question

    names = [name.strip() for name in options.questions.split(",") if name.strip()]
    if not names:
        raise ValueError("--questions names no type: give one or more, like pair,rating")
    try:
        return [parse_question(name).name for name in names]
    except ValueError as error:
        raise ValueError(f"--questions: {error}") from error


def _check_options(options: StudyCreateOptions) -> None:
    if options.strategy not in STRATEGIES:
        raise ValueError(f"--strategy {options.strategy!r}: use one of {list(STRATEGIES)}")
    if options.participants < 1 or options.queries < 1:
        raise ValueError("--participants and --queries must be at least 1")
    if options.episodes < 2 or options.pairs < 1:
        raise ValueError("--episodes must be at least 2 and --pairs at least 1")
    if options.practice < 0:
        raise ValueError(f"--practice {options.practice} must be 0 or more")
    if options.queries + options.practice > options.pairs:
        raise ValueError(
            f"--queries {options.queries} (and --practice {options.practice}) exceeds --pairs "
            f"{options.pairs}: each participant is asked distinct pairs; raise --pairs"
        )
    _question_names(options)
    if options.strategy == "active" and not options.reward:
        raise ValueError("--strategy active chooses queries by BALD on a VPL model: pass --reward")
    if (options.policy or options.btl_policy) and not options.reward:
        raise ValueError("--policy shows the robot for a participant's z: pass --reward too")
    if options.btl_policy and not options.policy:
        raise ValueError("--btl-policy is shown beside the VPL policy: pass --policy too")
    if options.segment < 0:
        raise ValueError(f"--segment {options.segment} must be >= 0 (0: the whole episode)")
    out = Path(options.out)
    if (out / SPEC_NAME).exists() or (out / DB_NAME).exists():
        raise ValueError(
            f"--out {out} exists: a study is created once (its answers live there); choose "
            "another --out"
        )
    if half_built(out):
        raise ValueError(f"--out {half_built_message(out)}")
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise ValueError(
            f"--out {out} exists and is not a study: a study is created in a new (or empty) "
            "folder; choose another --out"
        )
    check_writable(out, "--out")


def _check_models(options: StudyCreateOptions) -> tuple[str, dict[str, Any]]:
    """The env id and kwargs, after loading (and so checking) the models named."""
    given = parse_env_kwargs(options.env_kwargs)
    if not options.reward:
        return options.env or DEFAULT_ENV, given
    model = load_reward_model(options.reward)
    env_id = str(model.meta.get("env_id") or options.env or DEFAULT_ENV)
    if options.env and options.env != env_id:
        raise ValueError(f"--reward {options.reward} was trained on {env_id}, not {options.env}")
    if options.strategy == "active" and model.latent_dim == 0:
        raise ValueError(f"--reward {options.reward} has no user latent: active needs a VPL model")
    kwargs = check_env_kwargs(model.meta.get("env_kwargs") or {}, given, options.reward)
    if options.policy:
        from robopref.policies.checkpoint import existing_reward, load_policy, read_meta

        _check_policy_meta("--policy", options.policy, read_meta(options.policy), env_id, options)
        load_policy(options.policy, model)  # refuses a policy of another reward model
        if options.btl_policy:
            btl_meta = read_meta(options.btl_policy)
            _check_policy_meta("--btl-policy", options.btl_policy, btl_meta, env_id, options)
            btl_reward = existing_reward(
                options.btl_reward or btl_meta["reward_path"], "--btl-reward", options.btl_policy
            )
            btl_model = load_reward_model(btl_reward)
            btl_env = str(btl_model.meta.get("env_id") or env_id)
            if btl_env != env_id:
                raise ValueError(
                    f"--btl-reward {btl_reward} was trained on {btl_env}, but --reward "
                    f"{options.reward} on {env_id}: pass the BTL reward model of {env_id} "
                    "(the one --btl-policy was trained with)"
                )
            load_policy(options.btl_policy, btl_model)
            options.btl_reward = btl_reward
    return env_id, kwargs


def _check_policy_meta(
    flag: str, folder: str, meta: dict[str, Any], env_id: str, options: StudyCreateOptions
) -> None:
    """Refuse a "your robot" policy of another task than the reward model's, or of a kind
    the study cannot show (an oracle needs the true goal; --policy a VPL one, --btl-policy
    a BTL one)."""
    if meta["env_id"] != env_id:
        raise ValueError(
            f"{flag} {folder} was trained on {meta['env_id']}, but --reward {options.reward} "
            f"on {env_id}: 'your robot' acts in the study's task. Pass a policy trained on "
            f"{env_id} (`robopref train-policy --reward {options.reward}`), or the reward "
            f"model of {meta['env_id']} to study that task"
        )
    latent_dim = int(meta["latent_dim"])
    wanted = "VPL (a latent policy trained on --reward)"
    if flag == "--btl-policy":
        wanted = "BTL (a latent policy with an empty z, trained on a BTL reward model)"
    right_kind = meta["kind"] == "latent" and (
        latent_dim == 0 if flag == "--btl-policy" else latent_dim > 0
    )
    if not right_kind:
        what = f"a {meta['kind']} policy" + (
            f" with a latent of size {latent_dim}" if meta["kind"] == "latent" else ""
        )
        raise ValueError(
            f"{flag} {folder} is {what}: the study shows a participant's z through a {wanted}; "
            f"pass such a policy to {flag}"
        )


class _ClipFrames:
    """The frame sink of the collection: every state's frames, kept per episode."""

    def __init__(self) -> None:
        self.frames: dict[int, list[list[np.ndarray]]] = defaultdict(list)

    def __call__(self, episode: int, t: int, frames: list[np.ndarray]) -> None:
        self.frames[episode].append(frames)

    def segment(self, episode: int, start: int, length: int) -> list[np.ndarray]:
        """The frames of states ``start .. start + length - 1`` of ``episode``."""
        return [f for state in self.frames[episode][start : start + length] for f in state]


def create_study(options: StudyCreateOptions, progress: bool = True) -> StudySpec:
    """Write the study folder (module docstring) and return its settings; ``options.file``:
    a study file's settings and texts (:mod:`robopref.study.study_file`) first."""
    from robopref.study.study_file import StudyTexts, merge_study_file

    texts = StudyTexts()
    if options.file:
        options, texts = merge_study_file(options, options.file)
    _check_options(options)
    env_id, env_kwargs = _check_models(options)
    started = time.perf_counter()
    env, steps = make_env(env_id, env_kwargs)
    fps = float(env.metadata["render_fps"])
    env.close()
    segment = options.segment or steps + 1
    if segment > steps + 1:
        raise ValueError(f"--segment {segment} exceeds the episode's {steps + 1} states")
    rng = np.random.default_rng(options.seed)
    sink = _ClipFrames()
    shown_kwargs = {**env_kwargs, "width": CLIP_WIDTH, "height": CLIP_HEIGHT}
    rollouts = collect_rollouts(
        env_id, options.episodes, rng, BehaviourMix(), progress=progress,
        env_kwargs=shown_kwargs, frame_sink=sink,
    )  # fmt: skip
    pool = build_query_pool(rollouts, options.pairs, segment, rng)
    final = Path(options.out)
    with _building(final) as out:
        spec = _write_study(options, out, pool, sink, (env_id, env_kwargs), segment, fps, started)
        spec.title, spec.description = texts.title, texts.description
        spec.instructions, spec.consent = texts.instructions, texts.consent
        spec.example_clip = _example_clip(pool) if texts.title else None
        spec.save(out)
    return spec


def _example_clip(pool: Any) -> str:
    """The welcome page's example: the clip of the pool's first segment."""
    return segment_clip_name(int(pool.origin[0, 0, 0]), int(pool.origin[0, 0, 1]))


#: the name a study is built under, beside its final name
BUILDING = ".{name}.creating-"
#: a file in a folder being built (so that only such folders are ever removed as leftovers)
BUILDING_MARK = ".robopref-study-creating"


@contextmanager
def _building(final: Path) -> Iterator[Path]:
    """A new private folder beside ``final``, renamed to ``final`` when the block succeeds and
    removed when it fails; leftovers of killed runs (marked folders) are removed first."""
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = BUILDING.format(name=final.name)
    for stale in final.parent.glob(f"{glob.escape(prefix)}*"):
        if (stale / BUILDING_MARK).is_file() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
    temp = Path(tempfile.mkdtemp(dir=final.parent, prefix=prefix))  # mode 0700
    try:
        (temp / BUILDING_MARK).touch()
        yield temp
        (temp / BUILDING_MARK).unlink()
        if final.exists() and not (final.is_dir() and not any(final.iterdir())):
            raise ValueError(
                f"--out {final} appeared while the study was being built: choose another --out"
            )
        os.replace(temp, final)  # atomic; an empty folder of that name is replaced
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _write_study(
    options: StudyCreateOptions,
    out: Path,
    pool: Any,
    sink: _ClipFrames,
    env: tuple[str, dict[str, Any]],
    segment: int,
    fps: float,
    started: float,
) -> StudySpec:
    """Write the clips (and each clip's end-state picture), pool, settings, database and
    links into ``out``."""
    env_id, env_kwargs = env
    (out / CLIPS_DIR).mkdir()
    names = np.vectorize(segment_clip_name)(pool.origin[..., 0], pool.origin[..., 1])
    hold = int(round(HOLD_SECONDS * fps))  # the last frame held, so the loop shows the end
    for episode, start in sorted({tuple(o) for o in pool.origin.reshape(-1, 2).tolist()}):
        frames = sink.segment(episode, start, segment)
        name = segment_clip_name(episode, start)
        write_webm(frames + [frames[-1]] * hold, out / CLIPS_DIR / name, fps)
        write_png(frames[-1], out / CLIPS_DIR / end_state_name(name))
    StudyPool(pool, names[:, 0].tolist(), names[:, 1].tolist()).save(out)
    spec = StudySpec(
        env_id=env_id,
        env_kwargs=env_kwargs,
        queries=options.queries,
        strategy=options.strategy,
        segment=segment,
        fps=fps,
        seed=options.seed,
        participants=options.participants,
        reward=str(Path(options.reward).resolve()) if options.reward else None,
        policy=str(Path(options.policy).resolve()) if options.policy else None,
        btl_policy=str(Path(options.btl_policy).resolve()) if options.btl_policy else None,
        btl_reward=str(Path(options.btl_reward).resolve()) if options.btl_policy else None,
        base_url=options.base_url.rstrip("/"),
        practice=options.practice,
        questions=_question_names(options),
        notes={"episodes": options.episodes, "pairs": len(pool)},
    )
    spec.save(out)
    tokens = [secrets.token_urlsafe(16) for _ in range(options.participants)]
    participants = StudyStore(out).create(tokens)
    # The tokens are the participants' only credential: the file is private from the start.
    write_private(
        out / LINKS_NAME,
        "".join(
            f"{p.name} {spec.base_url}/s/{token}\n"
            for p, token in zip(participants, tokens, strict=True)
        ),
    )
    spec.notes["seconds"] = round(time.perf_counter() - started, 1)
    spec.save(out)
    return spec


def write_png(frame: np.ndarray, path: Path) -> Path:
    """Write one frame as a PNG picture (an end-state question shows it)."""
    from PIL import Image

    Image.fromarray(np.asarray(frame, np.uint8)).save(path, format="PNG", optimize=True)
    return path


def study_create_command(options: StudyCreateOptions) -> dict[str, Any]:
    """Create the study and print where it is and every participant's private link."""
    spec = create_study(options)
    out = Path(options.out)
    print(
        f"study {out}: {spec.env_id}, {spec.notes['pairs']} candidate pairs, "
        f"{spec.queries} {spec.strategy} queries per participant ({spec.notes['seconds']} s)"
    )
    print(f"serve it with: robopref study serve --study {out}")
    print(f"private links (one per participant; also in {out / LINKS_NAME}):")
    print((out / LINKS_NAME).read_text(), end="")
    return json.loads(json.dumps({"study": str(out), **spec.notes}))
