"""Which pair a participant is asked next, and in which order its clips are shown.

* ``random``: the pool in a random order of the participant's own (seeded by the study's
  seed and the participant's id), so a restarted server asks the same next pair. Practice
  queries are always chosen so.
* ``active``: BALD (:func:`robopref.reward.active.bald_scores`) on the participant's current
  posterior under the study's VPL model, from their answers so far only (each by its own
  type's likelihood: :func:`robopref.reward.typed_asking.typed_posterior`), over the pairs
  not yet shown to them. The posterior's Monte Carlo samples are seeded by those answers too (not
  by who gave them), so the next pair is a function of the answers alone: everybody's
  first pair is the same, and two people who answered alike are asked alike. The pool's
  z-independent work (``pair_scorer``) is done once per server.

The order (which segment is on the left) is a fair coin per query, seeded the same way, and
recorded with the query. An ``end-state`` pair is scored by BALD on the pairs' end states
(each held for the segment's length), not on their clips. A ranking's clips are, with
``active``, the most informative of :data:`RANKING_CANDIDATES` random sets of distinct clips
not yet shown in a ranking or rating (BALD of the Plackett-Luce answer:
:meth:`robopref.users.question_types.QuestionType.information`); a rating's (which a
comparison model cannot score: it knows returns only up to a constant) and practice
queries' are drawn at random. Every draw is seeded by the study, the participant and the
position.
"""

from __future__ import annotations

import numpy as np
import torch

from robopref.reward.active import BALD_SAMPLES, bald_scores
from robopref.reward.base import RewardModel
from robopref.reward.inputs import candidate_inputs
from robopref.reward.nets import as_tensor
from robopref.reward.typed_asking import ItemUtilities, logit_scale
from robopref.study.spec import StudyPool, StudySpec
from robopref.users.question_types import QuestionType

#: the random sets of clips a ranking is chosen from by BALD
RANKING_CANDIDATES = 64


class QueryChooser:
    """Chooses each participant's next pair and its shown order (module docstring)."""

    def __init__(self, spec: StudySpec, pool: StudyPool, model: RewardModel | None) -> None:
        self.spec = spec
        self.model = model
        self.n_pairs = len(pool)
        # one item per distinct clip: pool pairs share segments (whole episodes, often)
        clips = list(pool.clip_a) + list(pool.clip_b)
        first = {name: item for item, name in reversed(list(enumerate(clips)))}
        self.clip_of = clips
        self.distinct_items = np.asarray(sorted(first.values()), np.int64)
        if spec.strategy == "active":
            if model is None or model.latent_dim == 0:
                raise ValueError("an active study needs its VPL reward model (study.json)")
            self.inputs = candidate_inputs(model, pool.pool)
            self.scorer = model.pair_scorer(*self.inputs)
            steps = pool.pool.segment_length
            self.end_scorer = model.pair_scorer(
                *(np.repeat(side[:, -1:], steps, 1) for side in self.inputs)
            )
            self.scale = logit_scale(model, steps)
            # every item (A sides, then B sides) as the model reads it, on the device once
            self.items = as_tensor(np.concatenate(self.inputs).astype(np.float32), model.device)

    def _rng(self, participant: int, position: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.spec.seed, participant, position, stream])

    def swapped(self, participant: int, position: int) -> bool:
        """Whether the query at ``position`` shows the pool's segment B on the left."""
        return bool(self._rng(participant, position, 1).random() < 0.5)

    def next_pair(
        self,
        participant: int,
        shown: list[int],
        posterior: tuple[np.ndarray, np.ndarray] | None = None,
        history: list[int] | None = None,
        practice: bool = False,
        end_state: bool = False,
    ) -> int:
        """The pair to ask next, none of ``shown`` (the pairs shown so far); ``posterior``:
        the participant's posterior mean and std from their answers so far, and
        ``history``: those answers as whole numbers (the seed of BALD's samples);
        ``end_state``: scored on the pairs' end states. Practice queries are chosen at
        random."""
        if len(shown) >= self.n_pairs:
            raise ValueError("every pair of the pool has been shown to this participant")
        if self.spec.strategy == "random" or practice:
            order = self._rng(participant, 0, 0).permutation(self.n_pairs)
            taken = set(shown)
            return int(next(p for p in order if int(p) not in taken))
        assert posterior is not None and history is not None
        z = self._samples(len(shown), posterior, history)
        scorer = self.end_scorer if end_state else self.scorer
        with torch.no_grad():
            scores = bald_scores(self.scale * scorer.logits(z)).cpu().numpy()
        scores[np.asarray(shown, dtype=np.int64)] = -np.inf
        return int(np.argmax(scores))

    def next_items(
        self,
        participant: int,
        position: int,
        count: int,
        taken: set[int],
        ranking: QuestionType | None = None,
        posterior: tuple[np.ndarray, np.ndarray] | None = None,
        history: list[int] | None = None,
    ) -> tuple[int, ...]:
        """``count`` pool items of distinct clips for a ranking or a rating, none showing a
        clip of ``taken`` (items) when enough are left: drawn at random, or with
        ``ranking`` and the participant's ``posterior`` and ``history`` (as for
        :meth:`next_pair`) the most informative of :data:`RANKING_CANDIDATES` such draws."""
        items = self.distinct_items
        if len(items) < count:
            raise ValueError(
                f"the pool has {len(items)} distinct clips, fewer than a question's {count}"
            )
        seen = {self.clip_of[i] for i in taken}
        left = np.asarray([i for i in items if self.clip_of[i] not in seen], np.int64)
        source = left if len(left) >= count else items
        rng = self._rng(participant, position, 4)
        if ranking is None or posterior is None or history is None:
            return tuple(int(i) for i in rng.choice(source, size=count, replace=False))
        sets = np.stack(
            [rng.choice(source, size=count, replace=False) for _ in range(RANKING_CANDIDATES)]
        )
        best = self.most_informative_set(sets, ranking, position, posterior, history)
        return tuple(int(i) for i in sets[best])

    def most_informative_set(
        self,
        sets: np.ndarray,
        ranking: QuestionType,
        position: int,
        posterior: tuple[np.ndarray, np.ndarray],
        history: list[int],
    ) -> int:
        """The index of the set of items (``sets (C, k)``) whose ranking tells most about
        the participant: BALD's expected information under their posterior."""
        z = self._samples(position, posterior, history)
        utilities = self.scale * ItemUtilities(self.model, self.items, sets)(z)  # (S, C, k)
        return int(torch.argmax(ranking.information(utilities.permute(1, 0, 2))))

    def _samples(
        self, position: int, posterior: tuple[np.ndarray, np.ndarray], history: list[int]
    ) -> torch.Tensor:
        """BALD's samples of the participant's z, seeded by their answers (module docstring)."""
        assert self.model is not None
        mean, std = posterior
        noise = np.random.default_rng([self.spec.seed, position, 2, *history]).standard_normal(
            (BALD_SAMPLES, self.model.latent_dim)
        )
        return torch.as_tensor(mean + std * noise, dtype=torch.float32, device=self.model.device)


def label_code(label: float | None) -> int:
    """An answer as a small whole number for seeding: 0..100 for P(A), 101 for no answer."""
    return 101 if label is None or not np.isfinite(label) else int(round(100 * float(label)))
