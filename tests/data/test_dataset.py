"""PreferenceDataset files, seeded collection and the ``robopref collect`` command."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from robopref.cli import main
from robopref.data.collect import CollectOptions, collect, collect_command, summarize
from robopref.data.dataset import ARRAY_FIELDS, PreferenceDataset

PLATE = "robopref/PlatePlacement-v0"
SMALL = {"users": 12, "queries_per_user": 4, "episodes": 12, "segment": 5, "progress": False}


@pytest.fixture(scope="module")
def small() -> PreferenceDataset:
    return collect(CollectOptions(**SMALL))


def assert_same(one: PreferenceDataset, two: PreferenceDataset) -> None:
    for name in ARRAY_FIELDS:
        a, b = getattr(one, name), getattr(two, name)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
    assert one.env_id == two.env_id and one.feature_names == two.feature_names


def test_collected_dataset_fits_the_contract(small):
    small.validate()
    assert small.n_users == 12 and small.n_pairs == 48 and small.segment_length == 5
    assert np.array_equal(small.user, np.repeat(np.arange(12), 4))
    assert small.user_goal.shape == (12, 2) and set(small.user_group) <= {0, 1}
    assert np.all(np.isin(small.true_label, [0.0, 0.5, 1.0]))
    answered = ~np.isnan(small.label)
    assert np.all(np.isin(small.label[answered], [0.0, 0.5, 1.0]))
    assert np.all((small.answer_prob[answered] >= 0) & (small.answer_prob[answered] <= 1))
    assert small.meta["population"] == "two-modes" and small.meta["segment"] == 5


def test_seeded_collection_is_reproducible(small):
    assert_same(small, collect(CollectOptions(**SMALL)))
    other = collect(CollectOptions(**{**SMALL, "seed": 1}))
    assert not np.array_equal(other.obs_a, small.obs_a)


def test_save_load_round_trip(small, tmp_path):
    path = small.save(tmp_path / "sub" / "d.npz")
    loaded = PreferenceDataset.load(path, expected_env=PLATE)
    assert_same(small, loaded)
    assert loaded.meta == json.loads(json.dumps(small.meta))
    assert not list(path.parent.glob(".*tmp"))  # the temporary file was renamed
    train, test = loaded.split_users(0.25, seed=0)
    assert train.n_users + test.n_users == 12 and test.n_pairs == 4 * test.n_users


def test_save_removes_the_temporaries_of_a_killed_save(small, tmp_path):
    target = tmp_path / "d.npz"
    stale = tmp_path / ".d.npz.k1ll3d00.tmp.npz"  # as robopref.files.atomic_path names them
    stale.write_bytes(b"half a dataset")
    other = tmp_path / ".e.npz.k1ll3d00.tmp.npz"  # another output's: not this save's business
    other.write_bytes(b"")
    small.save(target)
    assert not stale.exists() and other.exists()
    assert PreferenceDataset.load(target).n_pairs == small.n_pairs


def test_truncated_and_corrupt_files_are_refused(small, tmp_path):
    path = small.save(tmp_path / "d.npz")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt.*robopref collect"):
        PreferenceDataset.load(truncated)
    flipped = bytearray(data)
    middle = len(data) // 2
    flipped[middle : middle + 64] = bytes(64)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupt"):
        PreferenceDataset.load(corrupt)
    text = tmp_path / "notes.npz"
    text.write_text("not a dataset")
    with pytest.raises(ValueError, match="not a robopref preference dataset.*robopref collect"):
        PreferenceDataset.load(text)


def test_an_image_or_a_pickle_is_named_and_never_unpickled(tmp_path, monkeypatch):
    """numpy's own message advises allow_pickle=True: unsafe for a file from anywhere."""
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(ValueError, match="plot.png is not a robopref preference dataset") as caught:
        PreferenceDataset.load(png)
    assert "PNG image" in str(caught.value) and "allow_pickle" not in str(caught.value)
    ran = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (ran,))

    pickled = tmp_path / "data.npz"
    pickled.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(ValueError, match="not a robopref preference dataset.*pickle"):
        PreferenceDataset.load(pickled)
    objects = tmp_path / "objects.npz"
    np.savez(objects, header=np.array([Exploit()], dtype=object))
    with pytest.raises(ValueError, match="never loads") as caught:
        PreferenceDataset.load(objects)
    assert "allow_pickle" not in str(caught.value)
    assert not ran.exists()


def test_foreign_and_other_schema_files_are_refused(small, tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a robopref preference dataset"):
        PreferenceDataset.load(foreign)
    path = small.save(tmp_path / "d.npz")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    header = json.loads(np.load(path)["header"].tobytes())
    header["schema_version"] = 99
    future = tmp_path / "future.npz"
    arrays = {k[:-4]: np.load(path)[k[:-4]] for k in members if k != "header.npy"}
    np.savez(future, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    with pytest.raises(ValueError, match="schema version 99.*reads version 3"):
        PreferenceDataset.load(future)
    with pytest.raises(ValueError, match="BlockSort.*robopref collect --env"):
        PreferenceDataset.load(path, expected_env="robopref/BlockSort-v0")
    with pytest.raises(FileNotFoundError, match="robopref collect"):
        PreferenceDataset.load(tmp_path / "missing.npz")
    header["schema_version"] = 1
    old = tmp_path / "old.npz"
    without_actions = {k: v for k, v in arrays.items() if k not in ("act_a", "act_b")}
    np.savez(old, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **without_actions)
    with pytest.raises(ValueError, match="schema version 1.*actions.*robopref collect"):
        PreferenceDataset.load(old)
    header["schema_version"] = 2  # before questions: still read, each pair its own question
    version_two = tmp_path / "version_two.npz"
    pairs_only = {k: v for k, v in arrays.items() if k != "question"}
    np.savez(version_two, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **pairs_only)
    loaded = PreferenceDataset.load(version_two)
    np.testing.assert_array_equal(loaded.question, np.arange(small.n_pairs))
    np.testing.assert_array_equal(loaded.label, small.label)
    del arrays["label"]
    partial = tmp_path / "partial.npz"
    np.savez(partial, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    with pytest.raises(ValueError, match=r"lacks the arrays \['label'\]"):
        PreferenceDataset.load(partial)


def test_segments_carry_the_actions_that_led_through_them(small):
    """Each state's action, NaN only in an episode's last state; replaying a pair's recorded
    actions from its recorded states is what the behaviour did (the tip moves that way)."""
    assert (
        small.act_a.shape == (*small.obs_a.shape[:2], 4) and small.act_b.shape == small.act_a.shape
    )
    last = small.meta["pool_index"]  # the pairs are the pool's; their episodes end at step 60
    assert len(last) == small.n_pairs
    finite = np.isfinite(small.act_a).all(-1)
    assert finite[:, :-1].all(), "only a segment's last state may be an episode's last"
    assert np.all(np.abs(small.act_a[finite]) <= 1.0 + 1e-6)
    # the tip's (first three observations) motion follows the action's (dx, dy, dz) sign
    step = small.obs_a[:, 1:, :3] - small.obs_a[:, :-1, :3]
    pushed = np.abs(small.act_a[:, :-1, :3]) > 0.5
    agree = np.sign(step[pushed]) == np.sign(small.act_a[:, :-1, :3][pushed])
    assert agree.mean() > 0.8


def test_inconsistent_dataset_is_not_saved(small, tmp_path):
    broken = PreferenceDataset(**{**small.__dict__, "contested": small.contested[:-1]})
    with pytest.raises(ValueError, match="contested has shape"):
        broken.save(tmp_path / "x.npz")
    no_steps = PreferenceDataset(**{**small.__dict__, "act_b": small.act_b[:, :1]})
    with pytest.raises(ValueError, match="act_a .* and act_b .* must be"):
        no_steps.save(tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_summary_figures(small):
    summary = summarize(small)
    assert summary["users"] == 12 and summary["pairs"] == 48
    for key in ("label_balance", "contested_share", "labeller_alignment", "bayes_ceiling"):
        assert 0.0 <= summary[key] <= 1.0, key
    p = small.answer_prob[small.true_label != 0.5]
    assert summary["bayes_ceiling"] == pytest.approx(np.maximum(p, 1 - p).mean(), rel=1e-6)
    noiseless = collect(CollectOptions(**SMALL, beta=float("inf"), mistake=0.0))
    assert summarize(noiseless)["labeller_alignment"] == 1.0
    assert summarize(noiseless)["bayes_ceiling"] == 1.0
    skipping = summarize(collect(CollectOptions(**SMALL, skip_threshold=0.0)))
    assert 0.0 < skipping["skip_rate"] < 1.0


def test_collect_command_writes_dataset_and_summary(tmp_path, capsys):
    out = tmp_path / "plate.npz"
    summary = collect_command(CollectOptions(**{**SMALL, "out": str(out)}))
    assert out.exists()
    written = json.loads((tmp_path / "plate.summary.json").read_text())
    assert written == json.loads(json.dumps(summary))
    printed = capsys.readouterr().out
    assert "bayes ceiling" in printed and "labeller alignment" in printed


def test_cli_collect_and_its_errors(tmp_path, capsys):
    out = tmp_path / "blocks.npz"
    argv = ["collect", "--env", "robopref/BlockSort-v0", "--users", "4", "--queries-per-user"]
    argv += ["2", "--episodes", "6", "--segment", "1", "--out", str(out), "--progress", "false"]
    assert main(argv) == 0
    assert PreferenceDataset.load(out, expected_env="robopref/BlockSort-v0").n_pairs == 8
    argv.append("--overwrite")  # the bad populations below are refused, not the existing out
    assert main([*argv, "--population", "continuous"]) == 2
    assert "does not apply" in capsys.readouterr().err
    assert main([*argv, "--population", str(tmp_path / "nope.yaml")]) == 2


def test_own_goal_pairs_set_the_object_down_near_each_users_goal():
    options = {**SMALL, "population": "continuous", "episodes": 40, "queries_per_user": 8}

    def near_own_goal(share: float) -> float:
        data = collect(CollectOptions(**options, own_goal_share=share, near_share=0.5))
        end = data.feat_a[:, -1]
        goal = data.user_goal[data.user]
        return float((np.hypot(*(end[:, :2] - goal).T) < 0.08).mean())

    assert near_own_goal(0.5) > near_own_goal(0.0) + 0.25
    with pytest.raises(ValueError, match="own-goal-share"):
        collect(CollectOptions(**SMALL, own_goal_share=1.5))


def test_stale_temp_cleanup_treats_the_name_literally(tmp_path) -> None:
    from robopref.files import clean_stale_temps

    target = tmp_path / "run[1].json"
    mine = tmp_path / ".run[1].json.abcd1234.tmp.json"
    lookalike = tmp_path / ".run1.json.abcd1234.tmp.json"  # matches if [1] were a pattern
    longer = tmp_path / ".run[1].json.b.json.abcd1234.tmp.json"  # another output's temporary
    for path in (mine, lookalike, longer):
        path.write_text("{}")
    assert clean_stale_temps(target) == [mine]
    assert lookalike.exists() and longer.exists()


def test_from_answers_equals_the_field_by_field_build() -> None:
    """``PreferenceDataset.from_answers`` gives what the collectors built field by field: for
    synthetic users (their goals, groups and noise-free answers), and for people (blank)."""
    from types import SimpleNamespace

    from robopref.data.dataset import SegmentPairs
    from robopref.users.synthetic import Labels

    rng = np.random.default_rng(0)
    shape = {"obs": (6, 2, 3), "feat": (6, 2, 2), "act": (6, 2, 1)}
    arrays = {f"{k}_{s}": rng.normal(size=v).astype(np.float32) for k, v in shape.items()
              for s in "ab"}  # fmt: skip
    pool = SimpleNamespace(feature_names=("x", "y"), **arrays)
    users = [SimpleNamespace(goal=np.array([0.1, 0.2]), group=0),
             SimpleNamespace(goal=np.array([-0.3, 0.0]), group=1)]  # fmt: skip
    pairs, user = np.array([4, 0, 2, 5]), np.array([0, 0, 1, 1])
    labels = Labels(np.array([1, 0, 0.5, np.nan], np.float32), np.array([1, 0, 0.5, 1], np.float32),
                    np.array([0.9, 0.1, 0.5, 0.7], np.float32))  # fmt: skip
    contested = np.array([True, False, False, True])
    built = PreferenceDataset(
        env_id=PLATE, feature_names=pool.feature_names, obs_a=pool.obs_a[pairs],
        obs_b=pool.obs_b[pairs], feat_a=pool.feat_a[pairs], feat_b=pool.feat_b[pairs],
        act_a=pool.act_a[pairs], act_b=pool.act_b[pairs], label=labels.label, user=user,
        user_goal=np.stack([u.goal for u in users]),
        user_group=np.array([u.group for u in users], dtype=np.int64),
        true_label=labels.true_label, answer_prob=labels.answer_prob, contested=contested,
        meta={"seed": 0},
    )  # fmt: skip
    made = PreferenceDataset.from_answers(
        pool, labels, user, env_id=PLATE, pairs=pairs, users=users, contested=contested,
        meta={"seed": 0},
    )  # fmt: skip
    assert_same(built, made)
    assert made.meta == {"seed": 0}
    segments = SegmentPairs(*(arrays[k][pairs] for k in ("obs_a", "obs_b", "feat_a", "feat_b",
                                                         "act_a", "act_b")))  # fmt: skip
    assert_same(built, PreferenceDataset.from_answers(
        segments, labels, user, env_id=PLATE, feature_names=("x", "y"), users=users,
        contested=contested,
    ))  # fmt: skip
    n = len(pairs)
    blank = PreferenceDataset(
        env_id=PLATE, feature_names=pool.feature_names, obs_a=pool.obs_a[pairs],
        obs_b=pool.obs_b[pairs], feat_a=pool.feat_a[pairs], feat_b=pool.feat_b[pairs],
        act_a=pool.act_a[pairs], act_b=pool.act_b[pairs], label=labels.label, user=user,
        user_goal=np.zeros((2, 0)), user_group=np.full(2, -1, np.int64),
        true_label=np.full(n, np.nan, np.float32), answer_prob=np.full(n, np.nan, np.float32),
        contested=np.zeros(n, bool),
    )  # fmt: skip
    people = PreferenceDataset.from_answers(
        pool, labels.label, user, env_id=PLATE, pairs=pairs, n_users=2
    )
    assert_same(blank, people)
    people.validate()
