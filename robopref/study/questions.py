"""The question types a study asks, and what their answers imply for a reward model.

Each type is one of the questions issue's types (:mod:`robopref.users.question_types`), as a
person sees it in the browser:

* ``pair``: two clips, "which did the task more the way you want it done?" (A, B, or
  can't tell);
* ``about-equal``: the same with "about equal" (APReL's weak comparison): A, B, equal,
  can't tell. The page a study asked before typed questions;
* ``end-state``: two pictures of the table as the robot left it, "which table would you
  rather have?" (A, B, equal, can't tell);
* ``ranking`` (``ranking:3`` or ``ranking:4``): three or four clips put in order, best first;
* ``rating``: one clip on a 1-7 slider.

Items are the pool's segments: item ``i < N`` is pair ``i``'s segment A, ``N + i`` its
segment B (``N`` pairs). A pair type asks a pool pair (chosen by the study's strategy:
random, or BALD on the participant's posterior); a ranking or a rating shows items drawn at
random (seeded by the study, the participant and the position) from those not yet shown to
the participant in that type.

Every answer becomes the pairwise preferences it implies (:func:`implied_pairs`: a ranking
of k, every earlier item over every later one; a participant's ratings, every two of their
rated items with different ratings, the higher preferred), so VPL's encoder, BTL, the
likelihood posterior and the export read every type as pairs. An end state is stored as a
segment that stays in that state for the segment's length: "the table as it is left",
judged over the same number of steps as a clip.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from robopref.data.dataset import SegmentPairs
from robopref.data.queries import QueryPool
from robopref.users.question_types import QuestionType, question_type

#: the types a study file may name, in the order a person learns them
STUDY_QUESTIONS = ("pair", "about-equal", "end-state", "ranking", "rating")
#: the types that ask a pool pair (two items, A and B)
PAIR_KINDS = ("pair", "about-equal", "end-state")
#: the rating scale's levels
RATING_LEVELS = 7
#: what each type asks, as the page says it
PROMPTS = {
    "pair": "Which of the two robots did the task more the way <em>you</em> want it done?",
    "about-equal": "Which of the two robots did the task more the way <em>you</em> want it "
    "done? (Or are they about equal?)",
    "end-state": "Here is the table as each robot left it. Which table would you rather have?",
    "ranking": "Put the robots in order: the one that did the task most the way <em>you</em> "
    "want it done first.",
    "rating": "How well did the robot do the task the way <em>you</em> want it done? "
    "(1: not at all, 7: exactly)",
}


@dataclass(frozen=True)
class StudyQuestion:
    """One question type of a study: its kind and how many items it shows."""

    kind: str
    items: int

    def __post_init__(self) -> None:
        if self.kind not in STUDY_QUESTIONS:
            raise ValueError(
                f"question type {self.kind!r} is unknown: use one of {list(STUDY_QUESTIONS)} "
                "(ranking:3 or ranking:4 for the clips a ranking shows)"
            )
        allowed = {"ranking": (3, 4), "rating": (1,)}.get(self.kind, (2,))
        if self.items not in allowed:
            raise ValueError(
                f"a {self.kind} question shows {' or '.join(map(str, allowed))} items, not "
                f"{self.items}"
            )

    @property
    def name(self) -> str:
        """The type as a study file names it (``ranking:4``)."""
        return f"ranking:{self.items}" if self.kind == "ranking" else self.kind

    @property
    def asks_pair(self) -> bool:
        """Whether it asks a pool pair (A and B)."""
        return self.kind in PAIR_KINDS

    def choices(self) -> tuple[str, ...]:
        """The answers its page offers (besides a ranking's order and a rating's value)."""
        if self.kind == "pair":
            return ("left", "right", "cant_tell")
        if self.kind in PAIR_KINDS:
            return ("left", "right", "equal", "cant_tell")
        return ("ranked" if self.kind == "ranking" else "rated", "cant_tell")

    def answer_model(self) -> QuestionType:
        """The answer model of the questions issue this type is asked as (a synthetic
        participant answers with it; its documented seconds are the cost default)."""
        kind = {"pair": "pair", "about-equal": "weak-pair", "end-state": "weak-pair"}
        return question_type(kind.get(self.kind, self.kind), self.items)


def parse_question(text: str) -> StudyQuestion:
    """A type as a study file writes it: ``pair``, ``about-equal``, ``end-state``,
    ``ranking`` (four clips), ``ranking:3``, ``rating``."""
    kind, _, count = str(text).strip().partition(":")
    usual = {"ranking": 4, "rating": 1}.get(kind, 2)
    if count and kind != "ranking":
        raise ValueError(f"question type {text!r}: only a ranking takes a count (ranking:3)")
    try:
        items = int(count) if count else usual
    except ValueError as error:
        raise ValueError(f"question type {text!r}: write ranking:3 or ranking:4") from error
    return StudyQuestion(kind, items)


def question_at(names: list[str], position: int, practice: int) -> tuple[StudyQuestion, bool]:
    """The type of the query at ``position`` (0-based, practice first) and whether it is a
    practice query: practice and recorded queries each take the types in turn."""
    practising = position < practice
    index = position if practising else position - practice
    return parse_question(names[index % len(names)]), practising


def item_side(pool: QueryPool, item: int) -> tuple[int, int]:
    """``(pair, side)`` of pool item ``item`` (side 0: segment A, 1: segment B)."""
    n = len(pool)
    if not 0 <= item < 2 * n:
        raise ValueError(f"item {item} is not one of the pool's {2 * n} segments")
    return item % n, item // n


def item_segment(pool: QueryPool, item: int, end_state: bool = False) -> dict[str, np.ndarray]:
    """Item ``item``'s ``obs``, ``feat`` and ``act`` (``(T, ...)``); ``end_state``: its last
    state held for the segment's length (actions NaN: nobody acted)."""
    pair, side = item_side(pool, item)
    suffix = "ab"[side]
    segment = {name: getattr(pool, f"{name}_{suffix}")[pair] for name in ("obs", "feat", "act")}
    if end_state:
        steps = len(segment["obs"])
        segment = {name: np.repeat(value[-1:], steps, 0) for name, value in segment.items()}
        segment["act"] = np.full_like(segment["act"], np.nan)
    return segment


@dataclass(frozen=True)
class ImpliedPair:
    """One pairwise preference an answer implies: items ``a`` and ``b`` of the pool, P(a
    preferred) ``label``, whether they were judged as end states, and the answer's row."""

    a: int
    b: int
    label: float
    end_state: bool
    row: int


def implied_pairs(rows: list[dict[str, Any]], n_pairs: int) -> list[ImpliedPair]:
    """The pairs every answer of ``rows`` implies (one participant's, or several: ratings
    pair only within one participant). ``rows``: answers as
    :meth:`~robopref.study.store.StudyStore.all_answers` gives them; skipped answers (can't
    tell) imply a pair of label NaN when they were a pair question, else none."""
    out: list[ImpliedPair] = []
    rated: dict[int, list[tuple[int, int, int]]] = {}
    for index, row in enumerate(rows):
        kind = str(row.get("kind") or "about-equal")
        if kind in PAIR_KINDS:
            label = float("nan") if row["label"] is None else float(row["label"])
            pair = int(row["pair"])
            out.append(ImpliedPair(pair, n_pairs + pair, label, kind == "end-state", index))
        elif row["answer"] is not None and kind == "ranking":
            order = [int(i) for i in row["answer"]]
            out.extend(
                ImpliedPair(better, worse, 1.0, False, index)
                for better, worse in itertools.combinations(order, 2)
            )
        elif row["answer"] is not None and kind == "rating":
            item = int(row["items"][0])
            rated.setdefault(int(row["participant"]), []).append((item, int(row["answer"]), index))
    for ratings in rated.values():
        for (item_a, rating_a, _), (item_b, rating_b, index) in itertools.combinations(ratings, 2):
            if rating_a != rating_b:
                out.append(ImpliedPair(item_a, item_b, float(rating_a > rating_b), False, index))
    return out


def implied_segments(pool: QueryPool, pairs: list[ImpliedPair]) -> SegmentPairs:
    """The segments of ``pairs`` (A: item ``a``, B: item ``b``), as a dataset stores them."""
    a = [item_segment(pool, p.a, p.end_state) for p in pairs]
    b = [item_segment(pool, p.b, p.end_state) for p in pairs]

    def stack(side: list[dict[str, np.ndarray]], name: str) -> np.ndarray:
        return np.stack([s[name] for s in side]).astype(getattr(pool, f"{name}_a").dtype)

    return SegmentPairs(
        stack(a, "obs"), stack(b, "obs"), stack(a, "feat"), stack(b, "feat"),
        stack(a, "act"), stack(b, "act"),
    )  # fmt: skip


def typed_answers(
    rows: list[dict[str, Any]], pool: QueryPool, read: str = "feat"
) -> list[tuple[QuestionType, np.ndarray, Any]]:
    """One participant's answers as their answer models read them (for
    :func:`robopref.reward.typed_asking.typed_posterior`): ``(type, items (k, T, ...),
    answer)``, the items' ``read`` array (``feat`` or ``obs``). A pair type is a pair (or,
    with "about equal", a weak pair) about the pool pair's segments A and B, answered P(A)
    (NaN: skipped); a ranking, the shown items and the order of their positions; ratings,
    which compare with nothing alone, the pairs between their rated items
    (:func:`implied_pairs`), each a pair answer."""
    out: list[tuple[QuestionType, np.ndarray, Any]] = []
    rated = []
    for row in rows:
        kind = str(row.get("kind") or "about-equal")
        if kind in PAIR_KINDS:
            end = kind == "end-state"
            pair = int(row["pair"])
            items = [item_segment(pool, pair, end), item_segment(pool, len(pool) + pair, end)]
            model = question_type("pair" if kind == "pair" else "weak-pair")
            label = float("nan") if row["label"] is None else float(row["label"])
            out.append((model, np.stack([s[read] for s in items]), label))
        elif kind == "ranking" and row["answer"] is not None:
            shown = [int(i) for i in row["items"]]
            order = [shown.index(int(i)) for i in row["answer"]]
            items = np.stack([item_segment(pool, i)[read] for i in shown])
            out.append((question_type("ranking", len(shown)), items, order))
        elif kind == "rating" and row["answer"] is not None:
            rated.append(row)
    for pair in implied_pairs(rated, len(pool)):
        items = np.stack([item_segment(pool, pair.a)[read], item_segment(pool, pair.b)[read]])
        out.append((question_type("pair"), items, pair.label))
    return out
