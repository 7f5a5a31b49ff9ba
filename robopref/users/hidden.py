"""The firewall for hidden knowledge: a synthetic user's goal and group, sealed.

A synthetic user's goal and group exist so that robopref can *evaluate*; behaviour, query
choice, reward fitting and policy training must reach a user only through its answers, as
they would a person in a study. :class:`SealedUser` enforces that at run time: it answers
queries like the :class:`~robopref.users.synthetic.SyntheticUser` it wraps, but reading its
``goal``, ``group`` or labelling model raises :class:`HiddenKnowledgeError` unless the reader has
declared itself with :func:`hidden_knowledge` (``"evaluation"`` or ``"oracle"``):

>>> user = SealedUser(population.sample_users(1, rng)[0])
>>> user.answer(pair, rng)            # fine: the user reads its own goal to answer
>>> user.goal                         # HiddenKnowledgeError
>>> with hidden_knowledge("evaluation"):
...     success = run_episode(env, act, user.goal).success

``robopref loop`` seals every user it recruits; its tests run the whole loop with them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import numpy as np

from robopref.users.synthetic import SyntheticUser, label_pairs

#: who may read hidden knowledge: the evaluation, the oracle baseline, a user answering
READERS = ("evaluation", "oracle", "user")
_reader: ContextVar[str | None] = ContextVar("robopref_hidden_reader", default=None)


class HiddenKnowledgeError(RuntimeError):
    """Code that trains or chooses data read a user's hidden goal, group or noise."""


@contextlib.contextmanager
def hidden_knowledge(reader: str) -> Iterator[None]:
    """Within this block, ``reader`` (one of :data:`READERS`) may read sealed users."""
    if reader not in READERS:
        raise ValueError(f"reader {reader!r} is not allowed hidden knowledge: one of {READERS}")
    token = _reader.set(reader)
    try:
        yield
    finally:
        _reader.reset(token)


def current_reader() -> str | None:
    """The declared reader of hidden knowledge now (None: nobody may read it)."""
    return _reader.get()


class SealedUser:
    """A synthetic user whose goal, group and labelling model only evaluation may read."""

    def __init__(self, user: SyntheticUser) -> None:
        self.__user = user
        self.env_id = user.env_id
        self.feature_names = user.feature_names

    def _hidden(self, name: str) -> Any:
        self._check(name)
        return getattr(self.__user, name)

    @staticmethod
    def _check(name: str) -> None:
        if current_reader() is None:
            raise HiddenKnowledgeError(
                f"a user's {name} was read outside evaluation: behaviour, query choice, "
                "reward fitting and policy training may see a user only through its answers "
                "(wrap evaluation code in robopref.users.hidden.hidden_knowledge('evaluation'))"
            )

    @property
    def goal(self) -> np.ndarray:
        """The hidden goal (evaluation and the oracle only)."""
        return self._hidden("goal")

    @property
    def group(self) -> int:
        """The population mode the user came from (evaluation only)."""
        return self._hidden("group")

    @property
    def label_model(self) -> Any:
        """The labelling noise (evaluation only)."""
        return self._hidden("label_model")

    @property
    def norm_weight(self) -> float:
        """The weight of the shared norms (evaluation only)."""
        return self._hidden("norm_weight")

    def unsealed(self) -> SyntheticUser:
        """The wrapped user, for evaluation code that needs the plain object."""
        self._check("goal")
        return self.__user

    def reward(self, features: np.ndarray) -> np.ndarray:
        """The user's own reward of features (evaluation only: it is the hidden goal's)."""
        return self.unsealed().reward(features)

    def answer(self, pair: Any, rng: np.random.Generator) -> float:
        """The user's answer to one query (what anybody may ask of it)."""
        with hidden_knowledge("user"):
            return self.__user.answer(pair, rng)


def answer_pairs(
    users: Sequence[SealedUser],
    user_index: np.ndarray,
    feat_a: np.ndarray,
    feat_b: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """The answers (labels only) of ``users[user_index[i]]`` to pair i, in one vectorized
    pass (:func:`robopref.users.synthetic.label_pairs`); the noise-free labels stay with the
    users."""
    with hidden_knowledge("user"):
        plain = [u.unsealed() for u in users]
        return label_pairs(plain, user_index, feat_a, feat_b, rng).label
