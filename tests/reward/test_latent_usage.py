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
