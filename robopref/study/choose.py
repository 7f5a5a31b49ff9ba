"""Which pair a participant is asked next, and in which order its clips are shown.

* ``random``: the pool in a random order of the participant's own (seeded by the study's
  seed and the participant's id), so a restarted server asks the same next pair.
* ``active``: BALD (:func:`robopref.reward.active.bald_scores`) on the participant's current
  posterior under the study's VPL model, from their answers so far only (the likelihood
  posterior of :func:`robopref.reward.active.answers_posterior`), over the pairs not yet
  shown to them. The posterior's Monte Carlo samples are seeded by those answers too (not
  by who gave them), so the next pair is a function of the answers alone: everybody's
  first pair is the same, and two people who answered alike are asked alike. The pool's
  z-independent work (``pair_scorer``) is done once per server.

The order (which segment is on the left) is a fair coin per query, seeded the same way, and
recorded with the query.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from robopref.reward.active import BALD_SAMPLES, answers_posterior, bald_scores
from robopref.reward.base import RewardModel
from robopref.reward.inputs import candidate_inputs
from robopref.study.spec import StudyPool, StudySpec


class QueryChooser:
    """Chooses each participant's next pair and its shown order (module docstring)."""

    def __init__(self, spec: StudySpec, pool: StudyPool, model: RewardModel | None) -> None:
        self.spec = spec
        self.model = model
        self.n_pairs = len(pool)
        if spec.strategy == "active":
            if model is None or model.latent_dim == 0:
                raise ValueError("an active study needs its VPL reward model (study.json)")
            self.inputs = candidate_inputs(model, pool.pool)
            self.scorer = model.pair_scorer(*self.inputs)

    def _rng(self, participant: int, position: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.spec.seed, participant, position, stream])

    def swapped(self, participant: int, position: int) -> bool:
        """Whether the query at ``position`` shows the pool's segment B on the left."""
        return bool(self._rng(participant, position, 1).random() < 0.5)

    def next_pair(
        self, participant: int, shown: list[int], answered: list[tuple[int, float | None]]
    ) -> int:
        """The pair to ask next, none of ``shown``; ``answered``: ``(pair, label)`` so far."""
        if len(shown) >= self.n_pairs:
            raise ValueError("every pair of the pool has been shown to this participant")
        if self.spec.strategy == "random":
            order = self._rng(participant, 0, 0).permutation(self.n_pairs)
            taken = set(shown)
            return int(next(p for p in order if int(p) not in taken))
        return self._most_informative(participant, shown, answered)

    def _most_informative(
        self, participant: int, shown: list[int], answered: list[tuple[int, float | None]]
    ) -> int:
        assert self.model is not None
        pairs = [pair for pair, _ in answered]
        labels = np.asarray(
            [np.nan if label is None else label for _, label in answered], np.float32
        )
        context: tuple[Any, Any, Any] = (
            self.inputs[0][pairs],
            self.inputs[1][pairs],
            labels,
        )
        mean, std = answers_posterior(self.model, context)
        history = [code for pair, label in answered for code in (pair, _label_code(label))]
        noise = np.random.default_rng([self.spec.seed, len(shown), 2, *history]).standard_normal(
            (BALD_SAMPLES, self.model.latent_dim)
        )
        z = torch.as_tensor(mean + std * noise, dtype=torch.float32, device=self.model.device)
        with torch.no_grad():
            scores = bald_scores(self.scorer.logits(z)).cpu().numpy()
        scores[np.asarray(shown, dtype=np.int64)] = -np.inf
        return int(np.argmax(scores))


def _label_code(label: float | None) -> int:
    """An answer as a small whole number for seeding: 0..100 for P(A), 101 for no answer."""
    return 101 if label is None or not np.isfinite(label) else int(round(100 * float(label)))
