"""``--env-kwargs``: parsed, recorded by what builds an env, and reused or refused after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robopref.cli import main
from robopref.data.dataset import PreferenceDataset
from robopref.data.rollouts import make_env
from robopref.env_kwargs import check_env_kwargs, make_with_kwargs, parse_env_kwargs
from robopref.reward import load_reward_model

POPULATION = Path(__file__).parents[1] / "benchmarks" / "populations" / "block_three_zones.yaml"
BLOCK = ["--env", "robopref/BlockSort-v0", "--env-kwargs", "n_zones=3"]


def test_parse_reads_yaml_scalars_and_refuses_bad_items() -> None:
    assert parse_env_kwargs(["n_zones=3", "name=x", "flag=true"]) == {
        "n_zones": 3,
        "name": "x",
        "flag": True,
    }
    assert parse_env_kwargs([]) == {} and parse_env_kwargs(None) == {}
    with pytest.raises(ValueError, match="is not KEY=VALUE: write e.g. --env-kwargs n_zones=3"):
        parse_env_kwargs(["n_zones"])
    with pytest.raises(ValueError, match="how to show the env"):
        parse_env_kwargs(["render_mode=human"])
    with pytest.raises(ValueError, match="differ from the env"):
        check_env_kwargs({"n_zones": 3}, {"n_zones": 2}, "the reward model r.pt")
    assert check_env_kwargs({"n_zones": 3}, {}, "x") == {"n_zones": 3}


def test_three_zones_through_collect_reward_policy_and_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data, reward, policy = tmp_path / "d.npz", tmp_path / "btl.pt", tmp_path / "policy"
    tiny = ["--users", "6", "--queries-per-user", "4", "--episodes", "6", "--pool-pairs", "64"]
    assert main(["collect", *BLOCK, *tiny, "--population", str(POPULATION), "--out", str(data),
                 "--progress", "false"]) == 0  # fmt: skip
    dataset = PreferenceDataset.load(data)
    assert dataset.meta["env_kwargs"] == {"n_zones": 3}
    assert "zone_2" in " ".join(dataset.feature_names)
    assert main(["train-reward", "--data", str(data), "--model", "btl", "--out", str(reward),
                 "--epochs", "2"]) == 0  # fmt: skip
    assert load_reward_model(reward).meta["env_kwargs"] == {"n_zones": 3}
    capsys.readouterr()
    train = ["train-policy", "--reward", str(reward), "--data", str(data), "--out", str(policy),
             "--steps", "64", "--n-envs", "1", "--eval-every", "0", "--eval-episodes", "1",
             "--progress", "false", "--device", "cpu", "--population", str(POPULATION)]  # fmt: skip
    assert main([*train, "--env-kwargs", "n_zones=2"]) == 2
    assert "differ from the env the reward model" in capsys.readouterr().err
    assert main(train) == 0
    assert json.loads((policy / "meta.json").read_text())["env_kwargs"] == {"n_zones": 3}
    report = tmp_path / "e.json"
    assert main(["evaluate", "--policy", str(policy), "--users", "3", "--episodes", "1",
                 "--population", str(POPULATION), "--json", str(report)]) == 0  # fmt: skip
    groups = {row["group"] for row in json.loads(report.read_text())["results"]}
    assert groups == {"all", "group_0", "group_1", "group_2"}  # the three-zone env was rebuilt


@pytest.mark.parametrize("item", ["n_zones=[", "n_zones=: :", "n_zones={a"])
def test_a_value_yaml_cannot_read_names_the_item_and_the_fix(item: str) -> None:
    with pytest.raises(ValueError, match="cannot be read as YAML") as error:
        parse_env_kwargs([item])
    assert repr(item) in str(error.value) and "n_zones=3" in str(error.value)


def test_make_with_kwargs_turns_an_unknown_kwarg_into_a_value_error() -> None:
    with pytest.raises(ValueError) as error:
        make_with_kwargs("robopref/BlockSort-v0", {"n_zone": 3})
    message = str(error.value)
    assert "got an unexpected keyword argument 'n_zone' (did you mean 'n_zones'?)" in message
    assert "was raised from the environment creator" not in message
    with pytest.raises(ValueError, match="unexpected keyword argument 'n_zone'"):
        make_env("robopref/BlockSort-v0", {"n_zone": 3})


@pytest.mark.parametrize(
    "command",
    [
        ["collect", "--out", "{tmp}/d.npz"],
        ["render", "--goal", "1", "--out", "{tmp}/v.mp4"],
        ["study", "create", "--out", "{tmp}/st"],
    ],
    ids=["collect", "render", "study-create"],
)
@pytest.mark.parametrize("kwarg", ["n_zone=3", "n_zones=["])
def test_a_bad_env_kwarg_is_a_one_line_error_with_exit_2(
    command: list[str], kwarg: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [part.format(tmp=tmp_path) for part in command]
    assert main([*args, "--env", "robopref/BlockSort-v0", "--env-kwargs", kwarg]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "unexpected keyword argument 'n_zone'" in err or "cannot be read as YAML" in err
