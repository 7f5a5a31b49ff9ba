"""``robopref train-reward --threads``: a negative count is refused before any work."""

from __future__ import annotations

from robopref.cli import main
from tests.support.toy import toy_dataset


def test_negative_threads_is_refused_with_the_fix(tmp_path, capsys) -> None:
    data = tmp_path / "toy.npz"
    toy_dataset(n_users=6, pairs_per_user=4, segment_length=3, seed=0).save(data)
    out = tmp_path / "vpl.pt"
    args = ["train-reward", "--data", str(data), "--out", str(out), "--epochs", "1"]
    assert main([*args, "--threads", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--threads -1 is negative: pass 0 for torch's default or a positive number" in err
    assert "Traceback" not in err
    assert not out.exists()
