"""Where a participant is in a study, and what each step records.

A participant goes through these pages, in order (each one only when the study has it)::

    welcome      the title, the task's description and instructions, an example clip
    consent      the consent text: "I agree" goes on, "I do not agree" ends the study
    query        practice queries (marked, never recorded as data), then the recorded
                 ones; the question types of ``study.json`` in turn
    robot        "your robot" being rendered (the personalized policy for the z their
                 answers imply, and BTL's, from the same start)
    final        both robots side by side in a random order, without their names: "which
                 would you rather have at your table?" (or "about equal")
    final-rating a 1-7 rating of each robot
    thanks       the end

A study without a BTL policy shows the participant's robot, labelled, instead of the blind
choice; one without policies ends after the last query. :class:`Study` holds the state
machine (:meth:`Study.page`) and every write; the routes (:mod:`robopref.study.app`) and
pages (:mod:`robopref.study.pages`) only call it.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from robopref.reward import load_reward_model
from robopref.reward.inputs import reward_input
from robopref.reward.nets import resolve_device
from robopref.reward.typed_asking import logit_scale, typed_posterior
from robopref.study.choose import QueryChooser, label_code
from robopref.study.questions import STUDY_QUESTIONS, StudyQuestion, question_at, typed_answers
from robopref.study.robot import RobotRenderer, robot_json
from robopref.study.spec import check_study_folder, end_state_name
from robopref.study.store import Participant, ShownQuery, StudyRefusedError, StudyStore

LOG = logging.getLogger("robopref.study")
#: how often a query is chosen again when another server changed the participant's queries
CHOOSE_TRIES = 5
#: the pages of a study, in the order a participant meets them (module docstring)
PAGES = ("welcome", "consent", "declined", "query", "robot", "final", "final-rating", "thanks")


class Study:
    """A study folder loaded for serving: settings, pool, chooser, store and robot worker."""

    def __init__(self, folder: str | Path, device: str = "cpu") -> None:
        self.folder = Path(folder).resolve()
        self.spec, self.pool = check_study_folder(self.folder)
        self.store = StudyStore(self.folder)
        self.store.make_private()  # a study created before the database was made private
        self.store.hash_tokens()  # ... or before tokens were hashed
        device = str(resolve_device(device))
        model = load_reward_model(self.spec.reward, device=device) if self.spec.reward else None
        self.model = model
        self.chooser = QueryChooser(self.spec, self.pool, model)
        self.robots = RobotRenderer(self.folder, self.spec, model, device)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="robot")
        self._rendering: set[int] = set()
        self._lock = threading.Lock()
        self._choosing: dict[int, threading.Lock] = {}

    @property
    def total(self) -> int:
        """Queries per participant, practice included."""
        return self.spec.queries + self.spec.practice

    @property
    def blind(self) -> bool:
        """Whether the end is the blind choice between two robots (a BTL policy too)."""
        return len(self.robots.kinds()) == 2

    # ------------------------------------------------------------------ where they are
    def participant(self, token: str) -> Participant:
        """The participant of ``token`` (404 if unknown)."""
        return self.store.participant(token)

    def page(self, participant: Participant) -> tuple[str, ShownQuery | None]:
        """The participant's current page (:data:`PAGES`) and, on ``query``, the open query
        (created if none is open)."""
        steps = self.store.steps(participant.id)
        if "declined" in steps:
            return "declined", None
        if self.spec.title and "welcome" not in steps:
            return "welcome", None
        if self.spec.consent and "consent" not in steps:
            return "consent", None
        query = self.next_query(participant)
        if query is not None:
            return "query", query
        if not self.robots.enabled:
            return "thanks", None
        if self.robot_state(participant)["status"] != "ready":
            return "robot", None
        if not self.blind:
            return "thanks", None
        final = self.store.final(participant.id)
        if final is None or final["choice"] is None:
            return "final", None
        return ("final-rating" if final["rated_at"] is None else "thanks"), None

    def take_step(self, participant: Participant, step: str) -> None:
        """Record the welcome read, the consent given or declined; refused out of order."""
        page, _ = self.page(participant)
        wanted = {"welcome": ("welcome",), "consent": ("consent",), "declined": ("consent",)}
        if page not in wanted.get(step, (step,)):
            raise StudyRefusedError(409, f"step {step!r} is not where you are ({page})")
        self.store.take_step(participant.id, step)

    # ------------------------------------------------------------------ queries
    def question(self, query: ShownQuery) -> StudyQuestion:
        """The type of a shown query."""
        return question_at(self.spec.questions, query.position, self.spec.practice)[0]

    def next_query(self, participant: Participant) -> ShownQuery | None:
        """The participant's open query (created if none is open); None when they are done.

        One request per participant chooses at a time; the store records the choice only
        if the participant's queries did not change meanwhile (another server process),
        else it is made again."""
        with self._lock:
            choosing = self._choosing.setdefault(participant.id, threading.Lock())
        with choosing:
            for _ in range(CHOOSE_TRIES):
                open_query = self.store.open_query(participant.id)
                if open_query is not None:
                    return open_query
                shown = self.store.shown(participant.id)
                position = len(shown)
                if position >= self.total:
                    return None
                kind, practice = question_at(self.spec.questions, position, self.spec.practice)
                if kind.asks_pair:
                    pair = self._next_pair(participant, shown, practice, kind.kind == "end-state")
                    swapped = self.chooser.swapped(participant.id, position)
                    query = self.store.show(
                        participant.id, pair, swapped, position, kind.kind, practice=practice
                    )
                else:
                    taken = {i for q in shown for i in q.items}
                    items = self._next_items(participant, position, kind, taken, practice)
                    query = self.store.show(
                        participant.id, None, False, position, kind.kind, items, practice
                    )
                if query is not None:
                    return query
        raise StudyRefusedError(503, "the server is busy with your other requests: reload")

    def _next_pair(
        self, participant: Participant, shown: list[ShownQuery], practice: bool, end_state: bool
    ) -> int:
        pairs = [q.pair for q in shown if q.pair is not None]
        if self.spec.strategy == "random" or practice:
            return self.chooser.next_pair(participant.id, pairs, practice=practice)
        posterior, history = self.posterior(participant)
        return self.chooser.next_pair(
            participant.id, pairs, posterior, history, end_state=end_state
        )

    def _next_items(
        self,
        participant: Participant,
        position: int,
        kind: StudyQuestion,
        taken: set[int],
        practice: bool,
    ) -> tuple[int, ...]:
        if self.spec.strategy == "random" or practice or kind.kind != "ranking":
            return self.chooser.next_items(participant.id, position, kind.items, taken)
        posterior, history = self.posterior(participant)
        return self.chooser.next_items(
            participant.id, position, kind.items, taken, kind.answer_model(), posterior, history
        )

    def posterior(
        self, participant: Participant
    ) -> tuple[tuple[np.ndarray, np.ndarray], list[int]]:
        """The participant's posterior and answer history (:func:`posterior_of`) from their
        recorded answers."""
        assert self.model is not None
        rows = self.store.all_answers(participant=participant.id)
        return posterior_of(self.model, self.pool.pool, rows)

    def shown_items(self, token: str, query: ShownQuery) -> list[str]:
        """The URLs of what ``query`` shows, left to right: two clips (or end-state
        pictures) for a pair type, the items' clips for a ranking or a rating."""
        if query.pair is not None:
            a, b = self.pool.clip_a[query.pair], self.pool.clip_b[query.pair]
            names = [b, a] if query.swapped else [a, b]
            if query.kind == "end-state":
                names = [end_state_name(name) for name in names]
        else:
            n = len(self.pool)
            names = [(self.pool.clip_a if i < n else self.pool.clip_b)[i % n] for i in query.items]
        return [f"/s/{token}/clip/{name}" for name in names]

    def answer(
        self,
        participant: Participant,
        query: int,
        choice: str,
        client_ms: float | None,
        given: object = None,
    ) -> ShownQuery:
        """Store one answer (refusals: :meth:`StudyStore.answer`); the last one starts the
        participant's robot."""
        shown = self.store.answer(participant.id, query, choice, client_ms, given)
        if shown.position + 1 >= self.total:
            self.start_robot(participant)
        return shown

    def query_json(self, token: str, query: ShownQuery | None) -> dict[str, Any]:
        """The open query as the JSON routes give it."""
        if query is None:
            return {"done": True, "total": self.total}
        kind = self.question(query)
        urls = self.shown_items(token, query)
        out = {
            "done": False,
            "page": "query",
            "query": query.id,
            "position": query.position + 1,
            "total": self.total,
            "kind": kind.kind,
            "practice": query.practice,
            "choices": list(kind.choices()),
            "items": urls,
        }
        if query.pair is not None:
            out.update(left=urls[0], right=urls[1])
        return out

    def page_json(self, token: str, participant: Participant) -> dict[str, Any]:
        """The participant's current page as JSON (what a client needs to act on it)."""
        page, query = self.page(participant)
        if page == "query":
            return self.query_json(token, query)
        out: dict[str, Any] = {"done": page not in ("welcome", "consent"), "page": page}
        out["total"] = self.total
        if page in ("final", "final-rating"):
            self.show_final(participant)
            out["robots"] = [f"/s/{token}/final/left", f"/s/{token}/final/right"]
        if page == "robot":
            out["robot"] = self.robot_state(participant)["status"]
        return out

    # ------------------------------------------------------------------ the end
    def show_final(self, participant: Participant) -> dict[str, Any]:
        """The final row, created at its first showing with a fair coin for which robot is
        on the left (seeded by the study and the participant)."""
        final = self.store.final(participant.id)
        if final is not None:
            return final
        coin = np.random.default_rng([self.spec.seed, participant.id, 5]).random() < 0.5
        return self.store.show_final(participant.id, "vpl" if coin else "btl")

    def final_kind(self, participant: Participant, side: str) -> str:
        """The robot (``vpl`` or ``btl``) shown on ``side`` (left or right) of the end."""
        final = self.store.final(participant.id)
        if final is None or side not in ("left", "right"):
            raise StudyRefusedError(404, "no robot there: finish the questions first")
        other = "btl" if final["left"] == "vpl" else "vpl"
        return final["left"] if side == "left" else other

    def choose_final(self, participant: Participant, choice: str) -> None:
        """Store the blind final choice (left, right or equal); only on the final page."""
        page, _ = self.page(participant)
        if page != "final":
            raise StudyRefusedError(409, f"there is no final choice to make now ({page})")
        self.show_final(participant)
        self.store.choose_final(participant.id, choice)

    def rate_final(self, participant: Participant, left: Any, right: Any) -> None:
        """Store the 1-7 ratings of the left and right robots, after the choice."""
        page, _ = self.page(participant)
        if page != "final-rating":
            raise StudyRefusedError(409, f"there are no robots to rate now ({page})")
        self.store.rate_final(participant.id, left, right)

    # ------------------------------------------------------------------ robot
    def start_robot(self, participant: Participant) -> None:
        """Render the participant's robot clips on the worker unless ready or under way."""
        if not self.robots.enabled:
            return
        state = self.store.robot(participant.id)
        with self._lock:
            if (state is not None and state[0] == "ready") or participant.id in self._rendering:
                return
            self._rendering.add(participant.id)
        self.store.set_robot(participant.id, "rendering")
        self._worker.submit(self._render_robot, participant)

    def _render_robot(self, participant: Participant) -> None:
        try:
            z = self.posterior(participant)[0][0]
            result = self.robots.render(participant.name, participant.id, z)
            self.store.set_robot(participant.id, "ready", z=robot_json(result))
        except Exception as error:  # shown on the page and kept in the database
            LOG.exception("robot clips of %s failed", participant.name)
            self.store.set_robot(participant.id, "failed", error=repr(error))
        finally:
            with self._lock:
                self._rendering.discard(participant.id)

    def robot_state(self, participant: Participant, token: str = "") -> dict[str, Any]:
        """``{"status", "clips", "error"}`` of the participant's robot (``none`` without a
        policy); the clips' URLs only for a study that shows them labelled."""
        if not self.robots.enabled:
            return {"status": "none", "clips": {}}
        state = self.store.robot(participant.id)
        if state is None or (state[0] == "rendering" and participant.id not in self._rendering):
            # Done, but never started or killed mid-render: (re)start it now.
            if len(self.store.shown(participant.id)) >= self.total and (
                self.store.open_query(participant.id) is None
            ):
                self.start_robot(participant)
            state = self.store.robot(participant.id)
        status = state[0] if state else "waiting"
        clips = {}
        if status == "ready" and token and not self.blind:
            clips = {kind: f"/s/{token}/robot/{kind}" for kind in self.robots.kinds()}
        return {"status": status, "clips": clips, "error": state[2] if state else None}

    def close(self) -> None:
        """Let a running render finish and drop the queued ones (their participants' next
        visit renders them: their state stays ``rendering``), then stop the worker."""
        self._worker.shutdown(wait=True, cancel_futures=True)


def posterior_of(
    model: Any, pool: Any, rows: list[dict[str, Any]]
) -> tuple[tuple[np.ndarray, np.ndarray], list[int]]:
    """A participant's posterior mean and std under ``model`` from their answers ``rows``
    (:meth:`StudyStore.all_answers`), each by its own type's likelihood
    (:func:`robopref.reward.typed_asking.typed_posterior`; the clips' logits on the scale of
    the model's training segments: :func:`~robopref.reward.typed_asking.logit_scale`), and
    the answers as whole
    numbers (the seed of BALD's samples: the next pair is a function of the answers)."""
    read = "feat" if reward_input(model) == "features" else "obs"
    scale = logit_scale(model, pool.segment_length)
    posterior = typed_posterior(model, typed_answers(rows, pool, read), scale)
    history = [
        code
        for row in rows
        for code in (
            STUDY_QUESTIONS.index(row["kind"]), 0 if row["pair"] is None else 1 + row["pair"],
            *row["items"], *_answer_codes(row),
        )
    ]  # fmt: skip
    return posterior, history


def _answer_codes(row: dict[str, Any]) -> list[int]:
    """An answer as whole numbers (a seed): a pair's label code, a ranking's items, a rating."""
    if row["answer"] is None:
        return [label_code(row["label"])]
    return [int(i) for i in np.ravel(row["answer"])]
