"""Latent usage: collapsed dimensions and group separation from posteriors."""

from __future__ import annotations

import numpy as np
import pytest

from robopref.reward.latent_usage import ACTIVE_KL, usage_from_posteriors


def test_a_collapsed_latent_has_no_active_dimension_and_no_separation() -> None:
    rng = np.random.default_rng(0)
    means = rng.normal(0.0, 1e-3, size=(40, 4))
    usage = usage_from_posteriors(means, np.ones((40, 4)), np.repeat([0, 1], 20))
    assert usage["active_dims"] == 0
    assert max(usage["per_dim_kl"]) < ACTIVE_KL
    assert usage["min_separation"] < 1.0


def test_groups_apart_along_one_dimension_and_two_that_overlap() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[2.0, 0.0], [-2.0, 0.0], [-2.0, 0.05]])
    groups = np.repeat([0, 1, 2], 30)
    means = centres[groups] + rng.normal(0.0, 0.2, size=(90, 2))
    stds = np.tile([0.3, 1.0], (90, 1))  # the second dimension stays at the prior's width
    usage = usage_from_posteriors(means, stds, groups)
    assert usage["active_dims"] == 1  # only the first dimension moves away from the prior
    assert usage["separation"]["0-1"] > 5.0 and usage["separation"]["0-2"] > 5.0
    assert usage["separation"]["1-2"] < 1.0  # the pair a policy cannot tell apart
    assert usage["min_separation"] == usage["separation"]["1-2"]
    assert usage["principal_ratio"] < 0.05  # users lie along one line


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match=r"must be \(U, Z\)"):
        usage_from_posteriors(np.zeros((3, 2)), np.ones((3, 3)), np.zeros(3))


def test_group_information_is_near_zero_when_collapsed_and_near_a_bit_when_apart() -> None:
    rng = np.random.default_rng(2)
    groups = np.repeat([0, 1], 30)
    collapsed = usage_from_posteriors(rng.normal(0.0, 1e-3, (60, 4)), np.ones((60, 4)), groups)
    assert collapsed["group_entropy_bits"] == pytest.approx(1.0)
    assert collapsed["group_bits"] < 0.1
    apart = np.array([[1.5, 0.0], [-1.5, 0.0]])[groups] + rng.normal(0.0, 0.3, (60, 2))
    separated = usage_from_posteriors(apart, np.full((60, 2), 0.3), groups)
    assert separated["group_bits"] > 0.9
    # a third group that overlaps the second: more entropy, not all of it carried
    three = np.repeat([0, 1, 2], 20)
    means = np.array([[2.0, 0.0], [-2.0, 0.0], [-2.0, 0.05]])[three] + rng.normal(0, 0.2, (60, 2))
    usage = usage_from_posteriors(means, np.ones((60, 2)), three)
    assert usage["group_entropy_bits"] == pytest.approx(np.log2(3), abs=1e-3)
    assert 0.5 < usage["group_bits"] < usage["group_entropy_bits"] - 0.3
    one_group = usage_from_posteriors(means, np.ones((60, 2)), np.zeros(60, int))
    assert one_group["group_bits"] is None
