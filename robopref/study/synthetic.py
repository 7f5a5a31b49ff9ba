"""A synthetic participant: a user with a hidden goal taking a study over HTTP.

It goes through the same routes a browser's pages use (``next.json``, ``step.json``,
``answer.json``, ``final.json``, and every clip, picture and robot clip it is shown), and
judges what it is shown with its own answer model (:mod:`robopref.users.synthetic`), as
``robopref evaluate``'s users do:

* its *eyes*: a clip or picture URL names a file of the study's pool; the participant reads
  that segment's features (a picture: the segment's last state). A robot clip at the blind
  end is named only by its side: the participant downloads it and finds which of its two
  robot files has those bytes, then reads the episode's features beside it (what the clip
  shows; the server never serves them);
* pairs are answered by :meth:`~robopref.users.synthetic.SyntheticUser.answer` (the
  evaluation's model), every other type by the type's own model
  (:meth:`~robopref.users.synthetic.SyntheticUser.answer_question`); the blind final
  choice as the evaluation's win (this robot's episode or the other's), each robot's
  rating by the rating model;
* it records what it *meant* in the pool's own terms (P(segment A preferred), the items
  best first, the rating) and which robot it preferred, so a check can compare that with
  what the database, the report and the export say: nothing may be lost or mixed up
  between the page, the server and the model (the left/right swap, a ranking's order, the
  skipped answers).

Success is the task's own goal check on the last state of the participant's personalized
robot episode (the goal is the participant's own: only it and the evaluation read it).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robopref.study.questions import parse_question
from robopref.study.robot import robot_clip_name, shown_name
from robopref.study.spec import ROBOT_DIR, StudyPool, StudySpec
from robopref.users.hidden import hidden_knowledge
from robopref.users.synthetic import SyntheticUser

#: how long a participant waits for their robot to be rendered (all participants share one
#: rendering worker)
ROBOT_WAIT_S = 900.0


@dataclass
class ParticipantRecord:
    """What a synthetic participant did and meant (module docstring)."""

    name: str
    group: int
    meant: list[dict[str, Any]] = field(default_factory=list)
    practice: int = 0
    final: dict[str, Any] = field(default_factory=dict)
    success: dict[str, bool] = field(default_factory=dict)
    requests: int = 0


class StudyEyes:
    """What a study's clips and pictures show, by file name, and the task's goal check."""

    def __init__(self, folder: str | Path) -> None:
        import gymnasium as gym

        self.folder = Path(folder)
        self.spec = StudySpec.load(folder)
        pool = StudyPool.load(folder)
        self.features: dict[str, np.ndarray] = {}
        for names, feats in ((pool.clip_a, pool.pool.feat_a), (pool.clip_b, pool.pool.feat_b)):
            for name, feat in zip(names, feats, strict=True):
                self.features[name] = np.asarray(feat, np.float64)
        env = gym.make(self.spec.env_id, **self.spec.env_kwargs)
        self.task = env.unwrapped
        env.close()

    def seen(self, url: str) -> tuple[str, np.ndarray, bool]:
        """``(clip name, features (T, F), is a picture)`` of a clip or picture URL."""
        name = url.rsplit("/", 1)[1]
        picture = name.endswith(".png")
        clip = name.removesuffix(".png") + ".webm" if picture else name
        if clip not in self.features:
            raise ValueError(f"the study showed {url}, which is not one of its clips")
        return clip, self.features[clip], picture

    def robot(self, participant: str, content: bytes) -> tuple[str, np.ndarray]:
        """``(kind, episode features)`` of a robot clip served at the blind end."""
        digest = hashlib.sha256(content).digest()
        for kind in ("vpl", "btl"):
            path = self.folder / ROBOT_DIR / robot_clip_name(participant, kind)
            if path.is_file() and hashlib.sha256(path.read_bytes()).digest() == digest:
                with np.load(self.folder / ROBOT_DIR / shown_name(path.name)) as shown:
                    return kind, np.asarray(shown["features"], np.float64)
        raise ValueError(f"the robot clip served to {participant} is none of their robots")

    def success(self, features: np.ndarray, goal: np.ndarray) -> bool:
        """The task's goal check on an episode's last state."""
        return bool(self.task.goal_reward(features[-1], goal)[1])


def _choice(answer: float, choices: list[str]) -> str:
    """A pair answer (1 left, 0 right, 0.5 equal, NaN skipped) as the page's button."""
    if math.isnan(answer):
        return "cant_tell"
    if answer == 0.5:
        return "equal" if "equal" in choices else "cant_tell"
    return "left" if answer > 0.5 else "right"


def take_part(
    client: Any,
    token: str,
    name: str,
    user: SyntheticUser,
    eyes: StudyEyes,
    seed: int,
    wait_s: float = ROBOT_WAIT_S,
) -> ParticipantRecord:
    """Take the study at ``token`` as ``user`` (``client``: an HTTP client on the server)."""
    import time

    rng = np.random.default_rng(seed)
    with hidden_knowledge("user"):
        record = ParticipantRecord(name, int(user.group))
    base = f"/s/{token}"

    def get(path: str) -> Any:
        record.requests += 1
        reply = client.get(path)
        if reply.status_code != 200:
            raise RuntimeError(f"{name}: GET {path}: {reply.status_code} {reply.text[:200]}")
        return reply

    def post(path: str, body: dict[str, Any]) -> Any:
        record.requests += 1
        reply = client.post(path, json=body)
        if reply.status_code != 200:
            raise RuntimeError(f"{name}: POST {path}: {reply.status_code} {reply.text[:200]}")
        return reply.json()

    page = get(f"{base}/next.json").json()
    deadline = time.monotonic() + wait_s
    while page["page"] != "thanks":
        if page["page"] == "welcome":
            page = post(f"{base}/step.json", {"step": "welcome"})
        elif page["page"] == "consent":
            page = post(f"{base}/step.json", {"step": "consent"})
        elif page["page"] == "query":
            body, meant = _answer(page, user, eyes, rng, get)
            page = post(f"{base}/answer.json", body)["next"]
            if meant.pop("practice"):
                record.practice += 1
            else:
                record.meant.append(meant)
        elif page["page"] == "robot":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: the robot was not rendered in {wait_s} s")
            time.sleep(0.5)
            page = get(f"{base}/next.json").json()
        elif page["page"] == "final":
            seen = {
                side: eyes.robot(name, get(url).content)
                for side, url in zip(("left", "right"), page["robots"], strict=True)
            }
            with hidden_knowledge("user"):
                record.success = {kind: eyes.success(f, user.goal) for kind, f in seen.values()}
            win = user.answer((seen["left"][1][1:], seen["right"][1][1:]), rng)
            choice = _choice(win, ["left", "right", "equal"])
            rating = parse_question("rating").answer_model()
            ratings = {
                side: int(user.answer_question(rating, f[None, 1:], rng).item())
                for side, (_, f) in seen.items()
            }
            record.final = {
                "left": seen["left"][0],
                "choice": choice,
                "ratings": {seen[side][0]: ratings[side] for side in seen},
            }
            page = post(f"{base}/final.json", {"choice": choice})
            page = post(
                f"{base}/final.json",
                {"rating_left": ratings["left"], "rating_right": ratings["right"]},
            )
        else:
            raise RuntimeError(f"{name}: an unexpected page {page['page']!r}")
    return record


def _answer(
    page: dict[str, Any], user: SyntheticUser, eyes: StudyEyes, rng: np.random.Generator, get: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The answer to a query page, and what it means in the pool's terms."""
    for url in page["items"]:  # a person looks at what is shown
        get(url)
    seen = [eyes.seen(url) for url in page["items"]]
    kind = page["kind"]
    body: dict[str, Any] = {"query": page["query"], "client_ms": float(rng.uniform(2e3, 9e3))}
    meant: dict[str, Any] = {"kind": kind, "practice": page["practice"]}
    features = [f[-1:] if picture else f for _, f, picture in seen]
    if kind in ("pair", "about-equal", "end-state"):
        if kind == "pair":
            answer = user.answer((features[0], features[1]), rng)
        else:
            model = parse_question(kind).answer_model()
            answer = float(user.answer_question(model, np.stack(features), rng).item())
        choice = _choice(answer, page["choices"])
        body["choice"] = choice
        preferred = {"left": seen[0][0], "right": seen[1][0], "equal": "equal"}.get(choice)
        meant.update(clips=[seen[0][0], seen[1][0]], preferred=preferred)
    elif kind == "ranking":
        model = parse_question(f"ranking:{len(seen)}").answer_model()
        order = [int(i) for i in user.answer_question(model, np.stack(features), rng)]
        body.update(choice="ranked", order=order)
        meant["order"] = [seen[i][0] for i in order]
    else:
        model = parse_question("rating").answer_model()
        rating = int(user.answer_question(model, features[0][None], rng).item())
        body.update(choice="rated", rating=rating)
        meant.update(clip=seen[0][0], rating=rating)
    return body, meant


def stored_as_meant(folder: str | Path, records: list[ParticipantRecord]) -> list[str]:
    """Every difference between what the participants meant and what the study's database
    holds (an empty list: nothing lost or mixed up). Checks each recorded answer's type,
    the preferred clip of a pair type (through the pool's order and the shown swap), a
    ranking's clips best first, a rating, and the final choice's robot and ratings."""
    from robopref.study.store import StudyStore

    pool = StudyPool.load(folder)
    clips = list(pool.clip_a) + list(pool.clip_b)
    store = StudyStore(folder)
    ids = {p.name: p.id for p in store.participants()}
    problems: list[str] = []
    for record in records:
        rows = store.all_answers(participant=ids[record.name])
        if len(rows) != len(record.meant):
            problems.append(f"{record.name}: {len(rows)} answers stored, {len(record.meant)} given")
            continue
        for n, (row, meant) in enumerate(zip(rows, record.meant, strict=True)):
            where = f"{record.name} answer {n + 1} ({meant['kind']})"
            if row["kind"] != meant["kind"]:
                problems.append(f"{where}: stored as {row['kind']}")
            elif "clips" in meant:
                a, b = pool.clip_a[row["pair"]], pool.clip_b[row["pair"]]
                shown = [b, a] if row["swapped"] else [a, b]
                if shown != meant["clips"]:
                    problems.append(f"{where}: shown {meant['clips']}, stored pair {a}, {b}")
                label = row["label"]
                stored = None if label is None else {1.0: a, 0.0: b, 0.5: "equal"}[label]
                if stored != meant["preferred"]:
                    problems.append(f"{where}: meant {meant['preferred']}, stored {stored}")
            elif "order" in meant:
                stored = [clips[i] for i in row["answer"] or []]
                if stored != meant["order"]:
                    problems.append(f"{where}: meant {meant['order']}, stored {stored}")
            elif [clips[row["items"][0]], row["answer"]] != [meant["clip"], meant["rating"]]:
                problems.append(f"{where}: meant {meant['rating']}, stored {row['answer']}")
        final = store.final(ids[record.name])
        if record.final and (final is None or final["left"] != record.final["left"]):
            problems.append(f"{record.name}: the final robots' order differs")
        elif record.final:
            right = "btl" if final["left"] == "vpl" else "vpl"
            stored = {final["left"]: final["rating_left"], right: final["rating_right"]}
            if final["choice"] != record.final["choice"] or stored != record.final["ratings"]:
                problems.append(f"{record.name}: the final choice or ratings differ")
    return problems
