"""``PolicyMeta``: a policy folder's ``meta.json`` round-trips byte for byte, older files
read with today's defaults, and a bad one is refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from robopref.envs.wrappers import SetDown
from robopref.policies.meta import PolicyMeta

SHIPPED = Path(__file__).resolve().parents[2] / "robopref" / "policies" / "checkpoints"


def _meta(**changes: object) -> dict:
    meta = {
        "format": "robopref-policy", "algo": "ppo", "seed": 0, "set_down": "place",
        "options": {"population": "two-modes"}, "kind": "oracle", "name": "oracle",
        "env_id": "robopref/PlatePlacement-v0", "env_kwargs": {"n_zones": 3}, "latent_dim": 0,
        "reward_path": None, "reward_fingerprint": None, "steps": 10,
    }  # fmt: skip
    meta.update(changes)
    return meta


def test_round_trip_keeps_keys_order_and_bytes(tmp_path: Path) -> None:
    data = _meta(history=[{"steps": 10, "success": 0.5}])
    path = PolicyMeta(dict(data)).write(tmp_path)
    assert path == tmp_path / "meta.json"
    read = PolicyMeta.read(tmp_path)
    assert read.data == data and list(read.data) == list(data)
    assert (read.kind, read.name, read.algo, read.env_id) == (
        "oracle", "oracle", "ppo", "robopref/PlatePlacement-v0",
    )  # fmt: skip
    assert read.latent_dim == 0 and read.set_down == "place" and read.population == "two-modes"
    assert read.env_kwargs == {"n_zones": 3} and read.history == data["history"]
    before = path.read_bytes()
    PolicyMeta(read.data).write(tmp_path)
    assert path.read_bytes() == before


def test_shipped_policies_read_and_write_back_unchanged(tmp_path: Path) -> None:
    for name in ("policy_vpl", "policy_btl", "policy_oracle"):
        original = (SHIPPED / name / "meta.json").read_text(encoding="utf-8")
        meta = PolicyMeta.from_json(SHIPPED / name / "meta.json")
        assert meta.env_id and meta.kind in ("latent", "oracle")
        (tmp_path / name).mkdir()
        written = PolicyMeta(json.loads(original)).write(tmp_path / name)
        assert json.loads(written.read_text()) == json.loads(original)


def test_older_file_without_optional_keys_reads_with_the_defaults(tmp_path: Path) -> None:
    data = _meta()
    for key in ("set_down", "env_kwargs", "options", "steps"):
        data.pop(key)
    (tmp_path / "meta.json").write_text(json.dumps(data))
    meta = PolicyMeta.read(tmp_path)
    assert meta.method == "rl" and meta.set_down is SetDown.OFF and meta.env_kwargs == {}
    assert meta.population is None and meta.history == []


def test_latent_reward_path_is_resolved_and_the_recorded_one_kept(tmp_path: Path) -> None:
    folder = tmp_path / "policy_vpl"
    folder.mkdir()
    shutil.copy2(SHIPPED / "vpl.pt", tmp_path / "vpl.pt")
    meta = _meta(kind="latent", name="vpl", latent_dim=4, reward_path="../vpl.pt",
                 reward_fingerprint="x")  # fmt: skip
    PolicyMeta(meta).write(folder)
    read = PolicyMeta.read(folder)
    assert read.data["reward_path_recorded"] == "../vpl.pt"
    assert Path(read.data["reward_path"]) == tmp_path / "vpl.pt"


def test_bad_meta_is_refused_with_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="is not a trained policy"):
        PolicyMeta.read(tmp_path)
    no_reward = {k: v for k, v in _meta(kind="latent").items() if not k.startswith("reward")}
    with pytest.raises(ValueError, match=r"lacks the field\(s\) reward_path, reward_fingerprint"):
        PolicyMeta(no_reward).write(tmp_path)
    assert not (tmp_path / "meta.json").exists()  # nothing written when the check fails
    with pytest.raises(ValueError, match=r"unknown kind 'skill'.*latent, oracle, plain"):
        PolicyMeta(_meta(kind="skill")).check(tmp_path / "meta.json")
    with pytest.raises(ValueError, match=r"unknown algorithm 'td3'.*ppo, sac"):
        PolicyMeta(_meta(algo="td3")).check(tmp_path / "meta.json")
    (tmp_path / "meta.json").write_text('{"format": ')
    with pytest.raises(ValueError, match=r"not valid JSON .*train-policy --out"):
        PolicyMeta.read(tmp_path)
