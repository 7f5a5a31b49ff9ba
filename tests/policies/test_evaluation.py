"""``summarize``: the flat figures of the evaluation rows, as the three places that record
them (training history, loop log, sweep cell) always computed them."""

from __future__ import annotations

import numpy as np

from robopref.policies.evaluation import result_rows, summarize


def _records() -> list[dict]:
    rng = np.random.default_rng(0)
    records = []
    for policy, queries in (("vpl", 4), ("btl", None)):
        for user in range(6):
            records.append({
                "policy": policy, "user": user, "group": user % 2, "episode": 0,
                "queries": queries, "success": bool(rng.random() < 0.5),
                "return": float(rng.normal()), "win": 1.0 if policy == "vpl" else None,
            })  # fmt: skip
    return records


def test_summarize_flattens_one_policys_rows() -> None:
    records = _records()
    rows = result_rows(records, ["vpl", "btl"], has_btl=True)
    figures = summarize(rows, "vpl", win_rate=True, delivery=True)
    assert list(figures) == [
        "success", "true_return", "win_rate_vs_btl", "success_group_0", "success_group_1",
    ]  # fmt: skip
    mine = [r for r in records if r["policy"] == "vpl"]
    assert figures["success"] == float(np.mean([r["success"] for r in mine]))
    assert figures["true_return"] == float(np.mean([r["return"] for r in mine]))
    for g in (0, 1):
        expected = float(np.mean([r["success"] for r in mine if r["group"] == g]))
        assert figures[f"success_group_{g}"] == expected
    alone = result_rows([r for r in records if r["policy"] == "btl"], ["btl"], has_btl=False)
    assert list(summarize(alone)) == ["success", "true_return", "success_group_0",
                                      "success_group_1"]  # fmt: skip
