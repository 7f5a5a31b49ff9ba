"""``robopref collect``'s outputs, options and start-up: refusals come before any work."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

import robopref.data.collect
from robopref.cli import main
from robopref.data.collect import CollectOptions, behaviour_mix
from robopref.data.rollouts import BehaviourMix
from robopref.users.synthetic import NOISE_KEYS

TINY = ["--users", "2", "--queries-per-user", "2", "--episodes", "2", "--segment", "2"]
TINY += ["--pool-pairs", "16", "--progress", "false"]


def _refuse(*args, **kwargs):
    raise AssertionError("the rollouts started before the output was checked")


@pytest.fixture
def no_rollouts(monkeypatch):
    """Make any rollout fail loudly: a refusal must come before the work starts."""
    monkeypatch.setattr(robopref.data.collect, "collect_rollouts", _refuse)


def test_collect_refuses_an_existing_dataset_unless_overwrite(tmp_path, capsys, monkeypatch):
    out, summary = tmp_path / "d.npz", tmp_path / "d.summary.json"
    assert main(["collect", *TINY, "--out", str(out)]) == 0
    before, summary_before = out.read_bytes(), summary.read_bytes()
    capsys.readouterr()

    with monkeypatch.context() as patch:
        patch.setattr(robopref.data.collect, "collect_rollouts", _refuse)
        assert main(["collect", *TINY, "--seed", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"robopref collect: error: --out {out}: the dataset already exists; " in err
    assert "pass --overwrite to replace it, or choose another --out" in err
    assert out.read_bytes() == before and summary.read_bytes() == summary_before

    assert main(["collect", *TINY, "--seed", "1", "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes() != before  # another seed, another dataset, and its summary
    assert summary.read_bytes() != summary_before


def test_collect_refuses_an_out_under_a_file_before_the_rollouts(tmp_path, capsys, no_rollouts):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["collect", *TINY, "--out", str(blocker / "d.npz")]) == 2
    err = capsys.readouterr().err
    assert f"{blocker} is a file, so no folder can be made inside it; choose another --out" in err


def test_collect_refuses_a_read_only_folder_before_the_rollouts(
    read_only_folder, capsys, no_rollouts
):
    assert main(["collect", *TINY, "--out", str(read_only_folder / "d.npz")]) == 2
    err = capsys.readouterr().err
    assert f"the folder {read_only_folder} is not writable by this user" in err


def test_collect_options_take_their_defaults_from_the_library():
    assert behaviour_mix(CollectOptions()) == BehaviourMix(policy_share=0.0)
    overrides = [f.name for f in dataclasses.fields(CollectOptions) if f.name in NOISE_KEYS]
    assert tuple(overrides) == NOISE_KEYS
    assert all(getattr(CollectOptions(), name) is None for name in NOISE_KEYS)


def _robopref(*args: str, gl: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": gl}
    return subprocess.run(
        [sys.executable, "-m", "robopref.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_bogus_mujoco_gl_only_stops_rendering(tmp_path):
    assert _robopref("--help", gl="bogus").returncode == 0
    out = tmp_path / "d.npz"
    collected = _robopref("collect", *TINY, "--out", str(out), gl="bogus")
    assert collected.returncode == 0, collected.stderr
    assert out.exists()
    rendered = _robopref("render", "--out", str(tmp_path / "v.mp4"), gl="bogus")
    assert rendered.returncode == 2
    assert "Traceback" not in rendered.stderr
    assert rendered.stderr.startswith("robopref render: error: ")
    assert "MUJOCO_GL='bogus'" in rendered.stderr


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--env", "CartPole-v1"], "--env CartPole-v1 is not a robopref task: use one of"),
        (["--pool-pairs", "-3"], "--pool-pairs -3 must be >= 0"),
        (["--segment", "0"], "--segment 0 must be >= 1"),
        (["--segment", "500"], "--segment 500 is longer than the episodes of"),
        (["--expert-share", "-1"], "--expert-share -1.0 must be a finite number >= 0"),
        (["--careless-share", "2"], "--careless-share 2.0 is a share"),
        (["--expert-share", "0", "--random-share", "0"], "both 0"),
    ],
)
def test_collect_refuses_bad_options_by_name_before_the_rollouts(
    tmp_path, capsys, no_rollouts, argv, words
):
    assert main(["collect", *TINY, *argv, "--out", str(tmp_path / "d.npz")]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert "population" not in err  # CartPole-v1 used to be blamed on the population
    if argv[0] == "--env":
        assert "robopref/PlatePlacement-v0" in err


def test_collect_segment_names_the_episode_length(no_rollouts):
    options = CollectOptions(segment=62, users=2, episodes=2, progress=False)
    with pytest.raises(ValueError, match=r"episodes of robopref/PlatePlacement-v0, which have 61"):
        robopref.data.collect.collect(options)


@pytest.mark.parametrize(
    "name", ["expert_share", "random_share", "expert_noise", "near_share", "min_gap"]
)
def test_collect_library_refuses_nan_shares_by_option(name, no_rollouts):
    """argparse refuses --expert-share nan; a library caller needs the same refusal."""
    options = CollectOptions(users=2, episodes=2, progress=False, **{name: float("nan")})
    with pytest.raises(ValueError, match=f"--{name.replace('_', '-')} nan must be a finite"):
        robopref.data.collect.collect(options)


def test_collect_names_an_image_or_a_folder_given_as_population(tmp_path, capsys, no_rollouts):
    png = tmp_path / "pop.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    out = str(tmp_path / "d.npz")
    assert main(["collect", *TINY, "--population", str(png), "--out", out]) == 2
    assert "is not a YAML text file" in capsys.readouterr().err
    assert main(["collect", *TINY, "--population", str(tmp_path), "--out", out]) == 2
    assert "is a folder, not a file" in capsys.readouterr().err


def test_collect_stores_a_ranking_as_the_pairs_it_implies(tmp_path):
    from robopref.data.dataset import PreferenceDataset

    out = tmp_path / "ranked.npz"
    argv = ["--users", "3", "--queries-per-user", "2", "--episodes", "4", "--segment", "3"]
    argv += ["--pool-pairs", "16", "--progress", "false", "--population", "continuous"]
    argv += ["--question", "ranking:4", "--question-items", "end-states", "--out", str(out)]
    assert main(["collect", *argv]) == 0
    data = PreferenceDataset.load(out)
    assert data.meta["question"] == "ranking-4 of end-states" and data.segment_length == 1
    assert data.n_pairs == 3 * 2 * 6 and len(np.unique(data.question)) == 6
    assert np.all(np.bincount(data.question) == 6)  # six pairs per ranking of four
    # each ranking's pairs are consistent: no item is both above and below another
    for q in np.unique(data.question):
        pairs = np.flatnonzero(data.question == q)
        wins = {}
        for p in pairs:
            better, worse = (data.obs_a[p], data.obs_b[p])[:: 1 if data.label[p] == 1 else -1]
            wins.setdefault(better.tobytes(), set()).add(worse.tobytes())
        for item, beaten in wins.items():
            assert not any(item in wins.get(other, set()) for other in beaten)
    assert 0.2 < data.label.mean() < 0.8  # the sides are shown in random order


def test_collect_refuses_a_rating_in_a_menu_and_own_goal_share_with_other_types(no_rollouts):
    for settings, words in (
        ({"question": "rating,pair"}, "a rating is collected alone"),
        ({"question": "rating", "own_goal_share": 0.5}, "--own-goal-share draws pairs"),
        ({"question": "ranking", "own_goal_share": 0.5}, "--own-goal-share draws pairs"),
    ):
        options = CollectOptions(users=2, episodes=2, progress=False, **settings)
        with pytest.raises(ValueError, match=words):
            robopref.data.collect.collect(options)


def test_collect_stores_each_users_ratings_ranked_as_pairs(tmp_path):
    from robopref.data.dataset import PreferenceDataset
    from robopref.data.typed_collect import RATED_PAIRS_PER_ITEM

    out = tmp_path / "rated.npz"
    argv = ["--users", "3", "--queries-per-user", "8", "--episodes", "4", "--segment", "3"]
    argv += ["--pool-pairs", "16", "--progress", "false", "--question", "rating", "--out", str(out)]
    assert main(["collect", *argv]) == 0
    data = PreferenceDataset.load(out)
    assert data.meta["question"] == "rating-7 of segments, ranked"
    rated = data.meta["ratings"]
    assert len(rated) == 3 and all(len(r["ratings"]) == 8 for r in rated)
    assert all(1 <= rating <= 7 for r in rated for rating in r["ratings"])
    for u, r in enumerate(rated):  # as many pairs as items of different ratings, capped
        ratings = np.array(r["ratings"])
        differ = int((ratings[:, None] != ratings[None, :]).sum() // 2)
        assert (data.user == u).sum() == min(differ, RATED_PAIRS_PER_ITEM * 8)
    assert (
        set(np.unique(data.label)) <= {0.0, 1.0} and len(np.unique(data.question)) == data.n_pairs
    )
