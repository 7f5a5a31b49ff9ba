"""``robopref video``: frame count and size of the written MP4 and GIF, refusals."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from robopref.cli import main
from robopref.policies.train import TrainPolicyOptions, train_policy
from robopref.video.policies import VideoOptions, render_policy_video, wrap_label
from robopref.video.writers import HOLD_SECONDS

EPISODE_STEPS = 60  # robopref/PlatePlacement-v0
FPS = 25


def _train(reward: Path, data: Path, out: Path) -> Path:
    train_policy(
        TrainPolicyOptions(
            reward=str(reward), data=str(data), algo="ppo", steps=512, out=str(out), n_envs=2,
            eval_every=0, eval_episodes=1, checkpoint_every=10_000, progress=False, device="cpu",
        )
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def tiny_policies(
    tiny_vpl: Path, tiny_btl: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A VPL and a BTL PPO policy trained for 512 steps."""
    root = tmp_path_factory.mktemp("policies")
    return _train(tiny_vpl, tiny_data, root / "vpl"), _train(tiny_btl, tiny_data, root / "btl")


def _green(image: np.ndarray) -> int:
    """Pixels of the green goal marker (green well above red and blue)."""
    rgb = image.astype(int)
    return int((rgb[..., 1] - np.maximum(rgb[..., 0], rgb[..., 2]) > 60).sum())


def _options(policies: tuple[Path, Path], reward: Path, out: Path, **changes) -> VideoOptions:
    fields = dict(
        policy=str(policies[0]), reward=str(reward), btl_policy=str(policies[1]), users=2,
        queries=2, pool_episodes=8, pool_pairs=64, out=str(out), width=160, height=120,
        gif_scale=0.75, gif_step=3, seed=1,
    )  # fmt: skip
    fields.update(changes)
    return VideoOptions(**fields)


def test_video_frame_count_size_and_same_start(
    tiny_policies: tuple[Path, Path], tiny_vpl: Path, tmp_path: Path
) -> None:
    result = render_policy_video(_options(tiny_policies, tiny_vpl, tmp_path / "clip"))
    assert result.mp4 == tmp_path / "clip.mp4" and result.gif == tmp_path / "clip.gif"
    frames = EPISODE_STEPS + 1 + round(HOLD_SECONDS * FPS)
    video = iio.imread(result.mp4)
    assert video.shape == (frames, 2 * 120 + 4, 2 * 160 + 4, 3)  # 2 policies x 2 users
    assert video[0, 120:124].min() >= 240  # the white gap between the rows
    assert _green(video[0]) > 0
    with Image.open(result.gif) as gif:
        assert gif.size == (2 * 120 + 4, 2 * 90 + 4)
        assert gif.info["duration"] == 120  # every 3rd frame: 3 frames at 25 fps
        assert _green(np.asarray(gif.convert("RGB"))) > 0  # the goal marker keeps its colour
        total = 0  # PIL merges identical frames (the held end) into one of summed duration
        for index in range(gif.n_frames):
            gif.seek(index)
            total += gif.info["duration"]
        assert total == math.ceil(frames / 3) * 120
    assert result.gif.stat().st_size < 2e6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.gif", "clip.mp4"], "temp left"
    vpl, btl = result.panels[:2], result.panels[2:]
    assert [p.title for p in result.panels] == ["VPL personalized"] * 2 + ["BTL"] * 2
    for mine, theirs in zip(vpl, btl, strict=True):
        assert mine.label == theirs.label and mine.label[0] == f"user {mine.user}"
        assert np.array_equal(mine.frames[0], theirs.frames[0])  # same initial state
        assert len(mine.frames) == EPISODE_STEPS + 1
    groups = {p.label[1] for p in vpl}
    assert groups == {"group 0", "group 1"}  # two-modes draws one user of each group
    assert not np.array_equal(vpl[0].frames[0], vpl[1].frames[0])  # different goal markers


def test_video_refusals(
    tiny_policies: tuple[Path, Path], tiny_vpl: Path, tiny_btl: Path, tmp_path: Path
) -> None:
    vpl, btl = tiny_policies
    with pytest.raises(ValueError, match="its z means something else"):
        render_policy_video(_options(tiny_policies, tiny_btl, tmp_path / "a"))
    with pytest.raises(ValueError, match="without a user latent"):
        render_policy_video(_options((btl, vpl), tiny_btl, tmp_path / "b"))
    with pytest.raises(ValueError, match="is not a BTL policy"):
        render_policy_video(_options((vpl, vpl), tiny_vpl, tmp_path / "c"))
    with pytest.raises(ValueError, match="must end in .mp4"):
        render_policy_video(_options(tiny_policies, tiny_vpl, tmp_path / "d.gif"))
    bad_posterior = dataclasses.replace(
        _options(tiny_policies, tiny_vpl, tmp_path / "e"), posterior="map"
    )
    with pytest.raises(ValueError, match="--posterior 'map': use one of"):
        render_policy_video(bad_posterior)
    assert not list(tmp_path.iterdir())  # nothing written


def test_missing_checkpoint_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["video", "--policy", str(tmp_path / "none"), "--out", str(tmp_path / "v")]) == 2
    assert "robopref train-policy --out" in capsys.readouterr().err


def test_wrap_label_fits_width() -> None:
    parts = ["user 3", "group 1", "goal (0.20, -0.15)"]
    assert wrap_label(parts, 320, 13) == "user 3, group 1, goal (0.20, -0.15)"
    assert wrap_label(parts, 120, 13) == "user 3, group 1\ngoal (0.20, -0.15)"
