"""robopref.video.writers: MP4/GIF writing, labelled panels, rollouts, and ``robopref render``."""

from __future__ import annotations

import re

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from robopref.cli import main
from robopref.tasks import scripted_policy
from robopref.video.render import parse_goal, placement_caption
from robopref.video.writers import (
    HOLD_SECONDS,
    rollout_frames,
    tile_frames,
    tile_videos,
    write_gif,
    write_video,
)


def gradient_frames(count: int, height: int, width: int) -> list[np.ndarray]:
    """Frames that differ from each other (a moving bright bar on a gradient)."""
    base = np.linspace(0, 200, width, dtype=np.uint8)[None, :, None]
    frames = []
    for i in range(count):
        frame = np.broadcast_to(base, (height, width, 3)).copy()
        frame[:, (i * 3) % width, :] = 255
        frames.append(frame)
    return frames


def test_write_video_round_trips_frame_count_and_size(tmp_path) -> None:
    frames = gradient_frames(21, 48, 64)
    mp4, gif = write_video(frames, tmp_path / "clip.mp4", fps=25)
    assert mp4 == tmp_path / "clip.mp4" and gif == tmp_path / "clip.gif"
    video = iio.imread(mp4)
    assert video.shape == (21, 48, 64, 3)
    assert np.abs(video.astype(int) - np.stack(frames).astype(int)).mean() < 8
    with Image.open(gif) as image:
        assert image.size == (64, 48)
        assert image.n_frames == 11  # every 2nd frame
        assert image.info["duration"] == 80  # 2 frames at 25 fps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.gif", "clip.mp4"], "temp left"


def test_odd_and_wide_frames(tmp_path) -> None:
    frames = gradient_frames(4, 51, 641)
    mp4, gif = write_video(frames, tmp_path / "wide.mp4", fps=10)
    assert iio.imread(mp4).shape == (4, 52, 642, 3)  # padded to even sides for H.264
    with Image.open(gif) as image:
        assert image.size == (320, 25)  # halved: wider than GIF_MAX_WIDTH


def test_write_video_refuses_bad_input(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"\.mp4"):
        write_video(gradient_frames(2, 8, 8), tmp_path / "clip.avi", fps=25)
    with pytest.raises(ValueError, match="no frames"):
        write_video([], tmp_path / "clip.mp4", fps=25)
    with pytest.raises(ValueError, match="uint8"):
        write_video([np.zeros((8, 8, 3), dtype=np.float32)], tmp_path / "clip.mp4", fps=25)
    assert list(tmp_path.iterdir()) == []


def test_tile_frames_places_labelled_panels() -> None:
    red = np.zeros((30, 40, 3), dtype=np.uint8)
    red[..., 0] = 200
    blue = np.zeros_like(red)
    blue[..., 2] = 200
    grid = tile_frames([red, blue, red], labels=["user 0", "user 1", "user 2"], columns=2, gap=4)
    assert grid.shape == (64, 84, 3)
    assert tuple(grid[25, 30]) == (200, 0, 0)  # bottom of the first panel, below its label
    assert tuple(grid[25, 74]) == (0, 0, 200)
    assert tuple(grid[50, 70]) == (255, 255, 255)  # the empty cell
    assert (grid[2:14, 2:30] == 255).any(), "the label's white text is drawn"
    unlabelled = tile_frames([red, blue])
    assert unlabelled.shape == (30, 84, 3)
    assert not (unlabelled[:, :40] == 255).any()
    with pytest.raises(ValueError, match="one per panel"):
        tile_frames([red, blue], labels=["only one"])


def test_tile_videos_holds_the_end_of_short_videos() -> None:
    short, long = gradient_frames(2, 10, 10), gradient_frames(5, 10, 10)
    tiled = tile_videos([short, long])
    assert len(tiled) == 5
    np.testing.assert_array_equal(tiled[4][:, :10], short[1])


def test_rollout_frames_renders_every_step() -> None:
    env = gym.make(
        "robopref/PlatePlacement-v0", goal=(0.1, -0.1), render_mode="rgb_array", width=32, height=32
    )
    rollout = rollout_frames(env, scripted_policy(env, (0.1, -0.1)), seed=0)
    assert rollout.steps == 60 and len(rollout.frames) == 61
    assert rollout.success is True
    assert rollout.frames[0].shape == (32, 32, 3)
    with pytest.raises(ValueError, match="rgb_array"):
        rollout_frames(gym.make("robopref/PlatePlacement-v0"), lambda obs: obs[:4], seed=0)


def test_parse_goal_explains_bad_goals() -> None:
    rng = np.random.default_rng(0)
    plate, block = gym.make("robopref/PlatePlacement-v0"), gym.make("robopref/BlockSort-v0")
    np.testing.assert_allclose(parse_goal(" 0.2,0.15", plate, rng), [0.2, 0.15])
    assert parse_goal("1", block, rng) == 1
    assert parse_goal("random", block, rng) in (0, 1)
    with pytest.raises(ValueError, match="use e.g. --goal 0.2,0.15"):
        parse_goal("left", plate, rng)
    with pytest.raises(ValueError, match="off the table"):
        parse_goal("0.2,0.9", plate, rng)
    with pytest.raises(ValueError, match="use e.g. --goal 1"):
        parse_goal("0.2,0.15", block, rng)
    with pytest.raises(ValueError, match="not a zone"):
        parse_goal("5", block, rng)


def test_render_command_writes_mp4_and_gif(tmp_path, capsys) -> None:
    out = tmp_path / "videos" / "plate.mp4"
    argv = ["render", "--goal=-0.1,0.1", "--out", str(out), "--episodes", "2"]
    assert main([*argv, "--width", "64", "--height", "48", "--camera", "top"]) == 0
    hold = round(HOLD_SECONDS * 25)
    video = iio.imread(out)
    assert video.shape == (2 * (61 + hold), 48, 64, 3)
    assert out.with_suffix(".gif").stat().st_size > 0
    printed = capsys.readouterr().out
    assert printed.count("success=True") == 2 and "wrote" in printed


def test_render_command_reports_a_bad_goal(tmp_path, capsys) -> None:
    out = tmp_path / "x.mp4"
    assert main(["render", "--env", "robopref/BlockSort-v0", "--goal", "x", "--out", str(out)]) == 2
    assert "--goal 'x' is not a zone index" in capsys.readouterr().err
    assert not out.exists()


def test_render_command_refuses_an_existing_video_unless_overwrite(tmp_path, capsys) -> None:
    out = tmp_path / "plate.mp4"
    argv = ["render", "--out", str(out), "--width", "32", "--height", "24"]
    out.write_bytes(b"a video made by other means")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"robopref render: error: --out {out}: the video already exists; " in err
    assert "pass --overwrite to replace it" in err and out.read_bytes().startswith(b"a video")
    out.unlink()
    out.with_suffix(".gif").write_bytes(b"a GIF made by other means")
    assert main(argv) == 2
    assert f"--out {out.with_suffix('.gif')}: the GIF of this --out already exists" in (
        capsys.readouterr().err
    )
    assert main([*argv, "--overwrite"]) == 0
    assert iio.imread(out).shape[1:] == (24, 32, 3)
    assert out.with_suffix(".gif").read_bytes().startswith(b"GIF8")


def test_render_command_refuses_an_out_under_a_file_before_rendering(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["render", "--out", str(blocker / "v.mp4"), "--goal", "nonsense"]) == 2
    # the goal is never parsed: the output is checked before the env is made
    err = capsys.readouterr().err
    assert f"{blocker} is a file, so no folder can be made inside it; choose another --out" in err


def test_render_writes_through_the_shared_atomic_writer(tmp_path) -> None:
    stale = tmp_path / ".clip.mp4.k1ll3d00.tmp.mp4"  # a killed write's temporary
    stale.write_bytes(b"")
    write_video(gradient_frames(2, 8, 8), tmp_path / "clip.mp4", fps=25)
    assert not stale.exists() and not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("noise", ["nan", "-1"])
def test_render_command_refuses_a_noise_that_is_nan_or_negative(noise, tmp_path, capsys) -> None:
    out = tmp_path / "v.mp4"
    try:  # argparse refuses nan itself (SystemExit 2); the command refuses -1
        code = main(["render", f"--noise={noise}", "--out", str(out)])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert "--noise" in err and not out.exists()


def green_pixels(frame: np.ndarray) -> int:
    """Pixels of the goal marker's green (well greener than red and blue)."""
    a = np.asarray(frame).astype(int)
    return int(((a[..., 1] - a[..., 0] > 50) & (a[..., 1] - a[..., 2] > 30)).sum())


def test_the_gif_keeps_the_green_goal_marker(tmp_path) -> None:
    env = gym.make("robopref/PlatePlacement-v0", goal=(0.2, 0.15), render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    env.close()
    assert green_pixels(frame) > 100
    _, gif = write_video([frame] * 4, tmp_path / "m.mp4", fps=25)
    with Image.open(gif) as image:
        image.seek(0)
        first = np.asarray(image.convert("RGB"))
    assert green_pixels(first) > 0.8 * green_pixels(frame)  # a median cut kept none


def test_the_render_commands_gif_keeps_the_green_goal_marker(tmp_path) -> None:
    """``robopref render`` writes its GIF with the one GIF writer (robopref.video.writers), whose
    octree quantizer keeps the goal marker green."""
    out = tmp_path / "plate.mp4"
    argv = ["render", "--out", str(out), "--goal", "0.2,0.15", "--caption", "false"]
    assert main(argv) == 0
    env = gym.make("robopref/PlatePlacement-v0", goal=(0.2, 0.15), render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()  # the first frame of the rollout, as rendered
    env.close()
    assert green_pixels(frame) > 100
    first = iio.imread(out.with_suffix(".gif"), index=0)[..., :3]
    assert first.shape == frame.shape
    assert green_pixels(first) > 0.8 * green_pixels(frame)


def test_write_gif_writes_frames_as_given_with_step_one(tmp_path) -> None:
    frames = gradient_frames(6, 40, 600)
    path = write_gif(frames, tmp_path / "g.gif", fps=10, step=1, max_width=None)
    with Image.open(path) as image:
        assert image.n_frames == 6 and image.size == (600, 40)
        assert image.info["duration"] == 100
    with pytest.raises(ValueError, match="step=0 must be >= 1"):
        write_gif(frames, tmp_path / "h.gif", fps=10, step=0)


@pytest.mark.parametrize(
    ("env_id", "goal", "expected"),
    [
        ("robopref/PlatePlacement-v0", (0.2, 0.15), r"^plate \d+\.\d cm from goal$"),
        ("robopref/BlockSort-v0", 1, r"^block \d+\.\d cm from zone 1's centre$"),
        (
            "robopref/TableSetting-v0",
            (0.22, 0, -0.09, 0.12, 0.03, -0.11),
            r"^cm from spots: plate \d+\.\d, cup \d+\.\d, utensil \d+\.\d$",
        ),
    ],
)
def test_placement_caption_names_the_distance_to_the_goal(env_id, goal, expected) -> None:
    env = gym.make(env_id, goal=goal)
    env.reset(seed=0)
    assert re.match(expected, placement_caption(env, env.unwrapped.goal))
    env.close()


def test_the_caption_is_the_plates_distance_and_is_drawn_on_the_frames() -> None:
    env = gym.make("robopref/PlatePlacement-v0", goal=(0.2, 0.15), render_mode="rgb_array")
    env.reset(seed=0)
    plate = env.unwrapped.features()[:2]
    expected = 100 * np.hypot(plate[0] - 0.2, plate[1] - 0.15)
    assert placement_caption(env, env.unwrapped.goal) == f"plate {expected:.1f} cm from goal"
    policy = scripted_policy(env, (0.2, 0.15))
    plain = rollout_frames(env, policy, seed=0, max_steps=3)
    texts: list[str] = []

    def caption(e: gym.Env) -> str:
        texts.append(placement_caption(e, e.unwrapped.goal))
        return texts[-1]

    captioned = rollout_frames(env, policy, seed=0, max_steps=3, caption=caption)
    env.close()
    assert len(texts) == 4 and len(captioned.frames) == len(plain.frames) == 4
    for a, b in zip(plain.frames, captioned.frames, strict=True):
        changed = np.any(a != b, axis=-1)
        assert changed.any() and not changed[: a.shape[0] // 2].any()  # at the bottom only


def test_render_command_captions_unless_told_not_to(tmp_path) -> None:
    frames = {}
    for caption in ("true", "false"):
        out = tmp_path / f"{caption}.mp4"
        assert main(["render", "--out", str(out), "--caption", caption, "--width", "160",
                     "--height", "120"]) == 0  # fmt: skip
        frames[caption] = iio.imread(out.with_suffix(".gif"), index=0)
    assert np.any(frames["true"] != frames["false"])
