"""``robopref video``: personalized policies for several new users, side by side, on video.

>>> robopref video --policy runs/demo/policy_vpl --reward runs/demo/vpl.pt --users 3 \\
...     --btl-policy runs/demo/policy_btl --out videos/personalized

For ``--users`` new users drawn from ``--population`` (by default the one the policies were
trained for, as ``robopref evaluate`` chooses it; the same users, queries and initial
states as ``robopref evaluate`` with the same ``--seed``, ``--population``, ``--users`` and
pool, both through :mod:`robopref.policies.personalize`: each panel is that command's
episode 0 of the user), the latent policy asks each user
``--queries`` actively chosen queries, infers z (:func:`robopref.policies.personalize`) and
acts; the episode is rendered with the user's hidden goal drawn as a viewer-only marker.
The panels go side by side, each labelled with the user (index as in the evaluation JSON,
group, goal) and the policy. With ``--btl-policy`` a second row shows the standard RLHF
(BTL) policy for the same users from the same initial states.

Two files: an MP4 at full panel size (``--width`` x ``--height``) and a small GIF next to it
for the README (panels scaled by ``--gif-scale``, every ``--gif-step``-th frame), both
written atomically. Existing files are refused unless ``--overwrite``, and an output that
cannot be written is refused before anything is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from robopref.data.rollouts import make_env
from robopref.envs.wrappers import SetDown
from robopref.files import check_output
from robopref.options import device_option
from robopref.policies import personalize
from robopref.policies.checkpoint import LoadedPolicy, existing_reward, load_policy, read_meta
from robopref.policies.evaluate_command import default_population
from robopref.policies.latent_env import LatentRewardEnv, LatentSource, env_goal
from robopref.policies.personalize import (
    episode_seed,
    new_user_pool,
    new_users,
    personalize_new_user,
)
from robopref.policies.rollout import policy_env_kwargs, run_episode, task_env
from robopref.reward import load_reward_model
from robopref.reward.active import POSTERIOR, POSTERIOR_HELP, POSTERIORS
from robopref.reward.base import RewardModel
from robopref.reward.nets import resolve_device
from robopref.reward.typed_asking import parse_menu
from robopref.users.population import resolve_population
from robopref.users.synthetic import SyntheticUser
from robopref.video.writers import HOLD_SECONDS, label_frame, tile_frames, write_gif, write_video

TITLES = {"vpl": "VPL personalized", "btl": "BTL"}
PANEL_GAP = 4  # white pixels between panels (as in robopref.video.writers.tile_frames)


@dataclass
class VideoOptions:
    """Render a personalized policy (and the BTL policy) for new users side by side."""

    policy: str = field(
        default="runs/demo/policy_vpl", metadata={"help": "latent (VPL) policy folder"}
    )
    reward: str = field(
        default="",
        metadata={"help": "the reward model it was trained with (empty: its meta.json's)"},
    )
    btl_policy: str = field(
        default="", metadata={"help": "BTL policy folder for a second row (empty: none)"}
    )
    btl_reward: str = field(
        default="", metadata={"help": "the BTL policy's reward model (empty: from its meta.json)"}
    )
    population: str = field(
        default="",
        metadata={
            "help": "population name or file of the new users (empty: the one the policies "
            "were trained for, from their meta.json)"
        },
    )
    users: int = field(default=3, metadata={"help": "new users, one panel each"})
    queries: int = field(
        default=personalize.QUERIES, metadata={"help": "queries asked of each new user (k)"}
    )
    strategy: str = field(
        default=personalize.STRATEGY, metadata={"help": "active or random queries"}
    )
    pool_pairs: int = field(
        default=personalize.POOL_PAIRS, metadata={"help": "candidate queries in the pool"}
    )
    posterior: str = field(default=POSTERIOR, metadata={"help": POSTERIOR_HELP})
    question: str = field(
        default="pair",
        metadata={"help": "the question types asked (as robopref evaluate --question)"},
    )
    question_items: str = field(
        default="segments", metadata={"help": "what a question shows: segments or end-states"}
    )
    pool_episodes: int = field(
        default=personalize.POOL_EPISODES,
        metadata={"help": "behaviour episodes the candidate pool is cut from"},
    )
    out: str = field(
        default="videos/personalized.mp4",
        metadata={"help": "MP4 path (.mp4 added if missing); the GIF goes next to it"},
    )
    seed: int = field(default=0, metadata={"help": "seed of users, queries and initial states"})
    device: str = device_option("the reward models' and policies' device", default="cpu")
    camera: str = field(default="side", metadata={"help": "camera: front, top or side"})
    width: int = field(default=320, metadata={"help": "panel width in pixels (MP4)"})
    height: int = field(default=240, metadata={"help": "panel height in pixels (MP4)"})
    gif_scale: float = field(default=0.75, metadata={"help": "GIF panel size / MP4 panel size"})
    gif_step: int = field(default=3, metadata={"help": "the GIF keeps every n-th frame"})
    overwrite: bool = field(
        default=False, metadata={"help": "replace an existing MP4 (and the GIF beside it)"}
    )


@dataclass
class Panel:
    """One rendered episode: its frames, the user's label parts, the policy, how it went."""

    frames: list[np.ndarray] = field(repr=False)
    label: list[str]
    title: str
    policy: str
    user: int
    success: bool


@dataclass
class VideoResult:
    """What :func:`render_policy_video` wrote: paths, frame count, panel grid, outcomes."""

    mp4: Path
    gif: Path
    frames: int
    rows: int
    columns: int
    panels: list[Panel] = field(repr=False)


def user_label(index: int, user: SyntheticUser, env: gym.Env) -> list[str]:
    """Label parts naming a user: ``["user 3", "group 1", "goal (0.20, -0.15)"]``."""
    parts = [f"user {index}"]
    if user.group >= 0:
        parts.append(f"group {user.group}")
    if isinstance(env.unwrapped.goal_space, gym.spaces.Discrete):
        parts.append(f"goal zone {int(user.goal[0])}")
    else:
        parts.append("goal (" + ", ".join(f"{g:.2f}" for g in user.goal) + ")")
    return parts


def wrap_label(parts: list[str], width: int, font_size: int) -> str:
    """Join ``parts`` with ", " into as few lines as fit ``width`` pixels at ``font_size``."""
    from PIL import ImageFont

    font = ImageFont.load_default(size=font_size)
    lines: list[str] = []
    for part in parts:
        joined = f"{lines[-1]}, {part}" if lines else part
        if lines and font.getlength(joined) <= width - 16:
            lines[-1] = joined
        else:
            lines.append(part)
    return "\n".join(lines)


def _mp4_path(out: str) -> Path:
    path = Path(out)
    if path.suffix == "":
        return path.with_suffix(".mp4")
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"--out {out!r} must end in .mp4 or have no suffix (the GIF goes beside)")
    return path


def _render_env(
    env_id: str, model: RewardModel, options: VideoOptions, set_down: SetDown = SetDown.OFF
) -> gym.Env:
    """The env a latent policy sees (obs ⊕ z), rendering from ``options.camera``."""
    base = task_env(
        env_id,
        set_down,
        **(model.meta.get("env_kwargs") or {}),
        render_mode="rgb_array",
        camera=options.camera,
        width=options.width,
        height=options.height,
    )
    return LatentRewardEnv(base, model, LatentSource.prior(model.latent_dim), defer_reward=True)


def load_policies(options: VideoOptions) -> list[tuple[str, LoadedPolicy, RewardModel]]:
    """``(title, policy, reward model)`` for the VPL policy and, if given, the BTL policy.

    A policy trained with another reward model is refused by :func:`load_policy`.
    """
    meta = read_meta(options.policy)
    if meta["kind"] != "latent" or int(meta["latent_dim"]) == 0:
        raise ValueError(
            f"--policy {options.policy} is a {meta['kind']} policy without a user latent: "
            "pass a VPL policy as --policy (a BTL policy goes in --btl-policy)"
        )
    reward_path = options.reward or str(meta["reward_path"])
    device = str(resolve_device(options.device))
    reward = load_reward_model(
        existing_reward(reward_path, "--reward", options.policy), device=device
    )
    policy = load_policy(options.policy, reward, device=device)
    loaded = [(f"{policy.name.upper()} personalized", policy, reward)]
    if options.btl_policy:
        btl_meta = read_meta(options.btl_policy)
        if btl_meta["kind"] != "latent" or int(btl_meta["latent_dim"]) != 0:
            raise ValueError(
                f"--btl-policy {options.btl_policy} is not a BTL policy (kind "
                f"{btl_meta['kind']}, latent size {btl_meta['latent_dim']}): pass the policy "
                "trained with `robopref train-policy --reward <btl model>`"
            )
        btl_path = options.btl_reward or str(btl_meta["reward_path"])
        btl_reward = load_reward_model(
            existing_reward(btl_path, "--btl-reward", options.btl_policy), device=device
        )
        btl_policy = load_policy(options.btl_policy, btl_reward, device=device)
        loaded.append(("BTL", btl_policy, btl_reward))
    env_ids = {policy.meta["env_id"] for _, policy, _ in loaded}
    if len(env_ids) != 1:
        raise ValueError(f"the policies were trained on different tasks {sorted(env_ids)}")
    return loaded


def render_panels(options: VideoOptions) -> tuple[list[list[Panel]], float]:
    """One row of panels per policy (VPL, then BTL), one panel per user; and the fps."""
    if options.users < 1 or options.queries < 0:
        raise ValueError("--users must be at least 1 and --queries at least 0")
    if options.posterior not in POSTERIORS:
        raise ValueError(f"--posterior {options.posterior!r}: use one of {POSTERIORS}")
    menu = parse_menu(options.question, options.question_items)
    torch.set_num_threads(1)
    loaded = load_policies(options)
    env_id = loaded[0][1].meta["env_id"]
    raw_env, _ = make_env(env_id, policy_env_kwargs(loaded[0][1].meta))
    metas = {str(policy.folder): policy.meta for _, policy, _ in loaded}
    name = default_population(metas, loaded[0][2], options.population)
    population = resolve_population(name, raw_env)
    users = new_users(population, options.users, options.seed)
    vpl_reward = loaded[0][2]
    pool = new_user_pool(
        vpl_reward, options.seed, options.pool_pairs, options.pool_episodes, env_id
    )
    rows: list[list[Panel]] = []
    fps = 25.0
    for title, policy, model in loaded:
        env = _render_env(env_id, model, options, SetDown.read(policy.meta.get("set_down")))
        fps = float(env.metadata["render_fps"])
        row = []
        try:
            for u, user in enumerate(users):
                z = personalize_new_user(
                    policy, model, user, u, pool, options.queries, options.strategy, options.seed,
                    posterior=options.posterior, menu=menu,
                )  # fmt: skip
                goal = env_goal(env, user.goal)
                episode = run_episode(
                    env,
                    policy.act,
                    user.goal,
                    z,
                    seed=episode_seed(options.seed, u, 0),  # evaluate's episode 0
                    render=True,
                    marker=goal,
                )
                label = user_label(u, user, env)
                row.append(Panel(episode.frames, label, title, policy.name, u, episode.success))
        finally:
            env.close()
        rows.append(row)
    return rows, fps


def _scaled(frame: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    if scale == 1.0:
        return frame
    height, width = frame.shape[:2]
    size = (max(2, round(width * scale)), max(2, round(height * scale)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS))


def tile_panels(
    rows: list[list[Panel]],
    fps: float,
    scale: float = 1.0,
    font_size: int = 13,
    step: int = 1,
) -> list[np.ndarray]:
    """The grid video: frame t of every panel (scaled, labelled), every ``step``-th t.

    Rows are policies, columns users. Each panel's last frame is held for ``HOLD_SECONDS``
    at the end (a shorter episode holds its end until the longest one finishes).
    """
    panels = [panel for row in rows for panel in row]
    length = max(len(p.frames) for p in panels) + int(round(HOLD_SECONDS * fps))
    labels = []
    for panel in panels:  # the user on as few lines as fit, the policy on the last line
        width = round(panel.frames[0].shape[1] * scale)
        labels.append(wrap_label(panel.label, width, font_size) + "\n" + panel.title)
    frames = []
    for t in range(0, length, step):
        cells = [
            label_frame(_scaled(p.frames[min(t, len(p.frames) - 1)], scale), text, font_size)
            for p, text in zip(panels, labels, strict=True)
        ]
        frames.append(tile_frames(cells, columns=len(rows[0]), gap=PANEL_GAP))
    return frames


def render_policy_video(options: VideoOptions) -> VideoResult:
    """Render, tile and write the MP4 and the GIF described by ``options``."""
    mp4 = _mp4_path(options.out)
    if options.gif_step < 1 or not 0.0 < options.gif_scale <= 1.0:
        raise ValueError("--gif-step must be at least 1 and --gif-scale in (0, 1]")
    exists = mp4.exists() or mp4.with_suffix(".gif").exists()
    check_output(mp4, options.overwrite, what="video", exists=exists)
    rows, fps = render_panels(options)
    frames = tile_panels(rows, fps)
    write_video(frames, mp4, fps, gif=False)
    font = max(9, round(13 * options.gif_scale))
    small = tile_panels(rows, fps, options.gif_scale, font, options.gif_step)
    gif = write_gif(small, mp4.with_suffix(".gif"), fps / options.gif_step, 1, max_width=None)
    panels = [panel for row in rows for panel in row]
    return VideoResult(mp4, gif, len(frames), len(rows), len(rows[0]), panels)


def video_command(options: VideoOptions) -> int:
    """CLI entry: render the video, print each panel's outcome and the files' sizes."""
    result = render_policy_video(options)
    for panel in result.panels:
        outcome = "success" if panel.success else "no success"
        print(f"{', '.join(panel.label)}, {panel.title}: {outcome}")
    sizes = ", ".join(f"{p} ({p.stat().st_size / 1e6:.2f} MB)" for p in (result.mp4, result.gif))
    print(f"wrote {result.frames} frames, {result.rows}x{result.columns} panels: {sizes}")
    return 0


__all__ = [
    "Panel",
    "VideoOptions",
    "VideoResult",
    "load_policies",
    "render_panels",
    "render_policy_video",
    "tile_panels",
    "user_label",
    "video_command",
    "wrap_label",
]
