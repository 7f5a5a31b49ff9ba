"""Videos of rollouts: MP4 + GIF writing, labelled side-by-side panels, rollouts to frames.

>>> env = gym.make("robopref/PlatePlacement-v0", goal=(0.2, 0.15), render_mode="rgb_array")
>>> rollout = rollout_frames(env, scripted_policy(env, (0.2, 0.15)), seed=0)
>>> write_video(rollout.frames, "videos/plate.mp4", fps=25)  # and videos/plate.gif

Several users' rollouts go side by side with :func:`tile_videos` (a label on each panel).
Files are written atomically (:func:`robopref.files.atomic_path`). The commands that
use this library are ``robopref render`` (:mod:`robopref.video.render`, scripted rollouts) and
``robopref video`` (:mod:`robopref.video.policies`, trained policies for new users).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robopref.envs.rendering import step_frames
from robopref.files import atomic_path

Policy = Callable[[np.ndarray], np.ndarray]
GIF_FRAME_STEP = 2  # the GIF keeps every 2nd frame
GIF_MAX_WIDTH = 480  # wider frames are halved in the GIF
HOLD_SECONDS = 0.4  # the last frame of each episode is held this long (render and video)


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad a frame by one edge pixel where needed so both sides are even (H.264 needs it)."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


def _check_frames(frames: Sequence[np.ndarray]) -> None:
    if len(frames) == 0:
        raise ValueError("no frames to write: the rollout rendered nothing")
    first = np.asarray(frames[0])
    if first.ndim != 3 or first.shape[2] != 3 or first.dtype != np.uint8:
        raise ValueError(
            f"frames must be (H, W, 3) uint8 RGB arrays, got {first.shape} {first.dtype}: "
            "render with render_mode='rgb_array'"
        )
    for frame in frames:
        if np.shape(frame) != first.shape:
            raise ValueError(f"all frames must have one size, got {first.shape} and {frame.shape}")


def _write_ffmpeg(frames: Sequence[np.ndarray], path: Path, fps: float, **codec: Any) -> None:
    """Encode ``frames`` with imageio's ffmpeg writer into ``path``, atomically."""
    import imageio.v2 as imageio

    _check_frames(frames)
    with atomic_path(path) as temp:
        writer = imageio.get_writer(
            temp, fps=fps, macro_block_size=1, ffmpeg_log_level="error", **codec
        )
        try:
            for frame in frames:
                writer.append_data(_even(np.asarray(frame)))
        finally:
            writer.close()


def write_video(
    frames: Sequence[np.ndarray], path: str | Path, fps: float, gif: bool = True
) -> tuple[Path, Path | None]:
    """Write ``frames`` as an H.264 MP4 at ``path`` and, with ``gif``, a GIF with the same stem.

    The GIF is smaller: every ``GIF_FRAME_STEP``-th frame at the matching lower rate, at half
    size when the frames are wider than ``GIF_MAX_WIDTH``. Returns (mp4 path, gif path or None).
    """

    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"video path {str(path)!r} must end in .mp4 (the GIF goes next to it)")
    _write_ffmpeg(frames, path, fps, codec="libx264", quality=7)
    gif_path = write_gif(frames, path.with_suffix(".gif"), fps) if gif else None
    return path, gif_path


def write_webm(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path:
    """Write ``frames`` as a VP8 WebM at ``path`` (atomically): what every browser plays
    without proprietary codecs (the study's clips; Debian's Chromium lacks H.264 on some
    builds)."""

    path = Path(path)
    if path.suffix.lower() != ".webm":
        raise ValueError(f"video path {str(path)!r} must end in .webm")
    _write_ffmpeg(
        frames, path, fps, codec="libvpx", output_params=["-b:v", "800k", "-auto-alt-ref", "0"]
    )
    return path


def write_gif(
    frames: Sequence[np.ndarray],
    path: str | Path,
    fps: float,
    step: int = GIF_FRAME_STEP,
    max_width: int | None = GIF_MAX_WIDTH,
) -> Path:
    """Write a looping GIF of every ``step``-th frame, halved if wider than ``max_width``
    (atomically): robopref's one GIF writer (``render``, ``video``; ``step=1,
    max_width=None`` writes frames already subsampled and scaled as given).

    Colours are reduced with an octree, which keeps the small green goal marker green (a
    median cut merges it into the grey floor) and gives smaller files.
    """
    from PIL import Image

    _check_frames(frames)
    if step < 1 or not fps > 0:
        raise ValueError(f"step={step} must be >= 1 and fps={fps} > 0")
    path = Path(path)
    height, width = np.shape(frames[0])[:2]
    scale = 0.5 if max_width is not None and width > max_width else 1.0
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    images = []
    for frame in frames[::step]:
        image = Image.fromarray(np.asarray(frame))
        if scale != 1.0:
            image = image.resize(size, Image.Resampling.LANCZOS)
        images.append(image.quantize(colors=128, method=Image.Quantize.FASTOCTREE))
    duration_ms = int(round(1000.0 * step / fps))
    with atomic_path(path) as temp:
        images[0].save(
            temp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=duration_ms,
            loop=0,
            optimize=True,
        )
    return path


def label_frame(
    frame: np.ndarray, label: str, font_size: int = 14, bottom: bool = False
) -> np.ndarray:
    """A copy of ``frame`` with ``label`` written in white on a dark box at its top left
    (``bottom``: its bottom left)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(np.asarray(frame))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=font_size)
    origin = (6, 4)
    if bottom:
        text_height = draw.textbbox((0, 0), label, font=font)[3]
        origin = (6, max(4, image.height - text_height - 6))
    left, top, right, low = draw.textbbox(origin, label, font=font)
    draw.rectangle((left - 4, top - 3, right + 4, low + 3), fill=(20, 20, 24))
    draw.text(origin, label, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def tile_frames(
    frames: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    columns: int | None = None,
    gap: int = 4,
) -> np.ndarray:
    """Put same-size frames in a grid (one row unless ``columns``), each with its label.

    Panels are separated by ``gap`` white pixels; empty grid cells are white.
    """
    _check_frames(frames)
    if labels is not None and len(labels) != len(frames):
        raise ValueError(f"{len(labels)} labels for {len(frames)} panels: give one per panel")
    columns = len(frames) if columns is None else max(1, min(columns, len(frames)))
    rows = -(-len(frames) // columns)
    height, width = np.shape(frames[0])[:2]
    canvas = np.full(
        (rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, 3),
        255,
        dtype=np.uint8,
    )
    for index, frame in enumerate(frames):
        row, column = divmod(index, columns)
        panel = label_frame(frame, labels[index]) if labels else np.asarray(frame)
        top, left = row * (height + gap), column * (width + gap)
        canvas[top : top + height, left : left + width] = panel
    return canvas


def tile_videos(
    videos: Sequence[Sequence[np.ndarray]],
    labels: Sequence[str] | None = None,
    columns: int | None = None,
) -> list[np.ndarray]:
    """Play several rollouts side by side: frame t of each, tiled; short ones hold their end."""
    if not videos or any(len(video) == 0 for video in videos):
        raise ValueError("every video needs at least one frame")
    length = max(len(video) for video in videos)
    return [
        tile_frames([video[min(t, len(video) - 1)] for video in videos], labels, columns)
        for t in range(length)
    ]


@dataclass
class RenderedRollout:
    """The frames of one episode (reset frame first) and how it went."""

    frames: list[np.ndarray] = field(repr=False)
    steps: int
    total_reward: float
    success: bool | None  # None when the env has no goal (no ``is_success`` in info)


def rollout_frames(
    env: gym.Env,
    policy: Policy,
    seed: int | None,
    options: dict[str, Any] | None = None,
    max_steps: int | None = None,
    caption: Callable[[gym.Env], str] | None = None,
) -> RenderedRollout:
    """Reset ``env`` with ``seed``, run ``policy`` to the episode's end, render every step.

    ``env`` must have ``render_mode="rgb_array"``. The episode ends on termination,
    truncation, or after ``max_steps`` steps. ``caption(env)``, read after the reset and
    after each step, is written at the bottom of that state's frames (a TableSetting place
    step's motion frames show where the step ended).
    """
    if env.render_mode != "rgb_array":
        raise ValueError(
            "rollout_frames needs an env made with render_mode='rgb_array', "
            f"got {env.render_mode!r}"
        )

    def captioned(new: list[np.ndarray]) -> list[np.ndarray]:
        if caption is None:
            return new
        text = caption(env)
        return [label_frame(frame, text, bottom=True) for frame in new]

    obs, info = env.reset(seed=seed, options=options)
    frames = captioned([env.render()])
    total, steps, done = 0.0, 0, False
    while not done and (max_steps is None or steps < max_steps):
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        frames.extend(captioned(step_frames(env)))
        total += float(reward)
        steps += 1
        done = terminated or truncated
    success = bool(info["is_success"]) if "is_success" in info else None
    return RenderedRollout(frames, steps, total, success)


__all__ = [
    "HOLD_SECONDS",
    "RenderedRollout",
    "label_frame",
    "rollout_frames",
    "tile_frames",
    "tile_videos",
    "write_gif",
    "write_video",
    "write_webm",
]
