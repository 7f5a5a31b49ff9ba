"""Real learning on the toy two-group task: VPL tells the groups apart, BTL cannot."""

from __future__ import annotations

import numpy as np

from robopref.reward.evaluation import evaluate_few_shot, posterior_means


def _row(rows: list[dict], strategy: str, k: int, subset: str) -> dict:
    return next(
        r for r in rows if r["strategy"] == strategy and r["k"] == k and r["subset"] == subset
    )


def test_vpl_separates_the_groups_and_btl_cannot(toy_split, toy_vpl, toy_btl) -> None:
    test = toy_split["test"]
    vpl = evaluate_few_shot(toy_vpl, test, [0, 2, 4], ["active", "random"], progress=False)
    btl = evaluate_few_shot(toy_btl, test, [4], ["active"], progress=False)
    assert _row(vpl, "active", 4, "contested")["accuracy"] >= 0.85
    assert _row(btl, "active", 4, "contested")["accuracy"] <= 0.65
    # no answers, no idea which group: VPL is a coin flip on contested pairs too
    assert _row(vpl, "active", 0, "contested")["accuracy"] <= 0.65
    # asking well beats asking at random when the budget is small
    assert (
        _row(vpl, "active", 2, "contested")["accuracy"]
        >= _row(vpl, "random", 2, "contested")["accuracy"]
    )
    assert _row(vpl, "active", 4, "all")["n_pairs"] == int(
        np.sum(~np.isnan(test.label) & (test.label != 0.5))
    )


def test_posterior_means_cluster_by_group(toy_split, toy_vpl) -> None:
    test = toy_split["test"]
    means = posterior_means(toy_vpl, test)
    groups = test.user_group
    centre = [means[groups == g].mean(0) for g in (0, 1)]
    between = np.linalg.norm(centre[0] - centre[1])
    within = max(np.linalg.norm(means[groups == g] - centre[g], axis=1).mean() for g in (0, 1))
    assert between > 2 * within
