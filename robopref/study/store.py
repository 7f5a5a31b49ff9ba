"""The study's SQLite database: participants, the queries shown to them, their answers.

SQLite is the embedded default: one file in the study folder, WAL journaling (readers never
block the writer, and a killed server loses no committed answer), one transaction per
answer. Every write happens in ``BEGIN IMMEDIATE`` transactions, so two requests of one
participant (two tabs, a double click) cannot both create a query or both answer one.

The database holds no secret: a participant's ``token`` column is ``sha256:`` and the
SHA-256 of the token in their private link (only ``links.txt`` has the links), and a link is
looked up by its hash. A study created before tokens were hashed keeps them in plain text
until it is next served, which hashes them in place (:meth:`StudyStore.hash_tokens`). The
file (and SQLite's ``-wal``/``-shm`` beside it, which take its mode) is created ``0600``:
the answers are the participants' personal data.

Tables::

    participants(id, token UNIQUE, name)            # token: sha256 of the link's secret
    queries(id, participant, position, pair, swapped, shown_at, kind, items, practice)
        UNIQUE(participant, position), UNIQUE(participant, pair)
    answers(query PRIMARY KEY, participant, choice, label, response_ms, client_ms,
            answered_at, answer)
    robots(participant PRIMARY KEY, status, z, error, updated_at)
    steps(participant, step, at)                    # welcome read, consent given
    finals(participant PRIMARY KEY, left, shown_at, choice, chosen_at, rating_left,
           rating_right, rated_at)                  # the blind final choice and ratings

``kind`` is the question type (:mod:`robopref.study.questions`). A pair question (``pair``,
``about-equal``, ``end-state``) is a pool pair: ``swapped`` = 1 when the pool's segment B
was shown on the left (the order is randomised per query and recorded, so position bias can
be measured), and ``label`` is P(A preferred) in the pool's own order (1 = A, 0 = B,
0.5 = equal, NULL = can't tell), the dataset's convention. A ranking or rating has no pair:
``items`` is the JSON list of the pool items shown, in shown order (item ``i < N`` is pair
``i``'s segment A, ``N + i`` its segment B), and ``answer`` the JSON answer: the items best
first, or the rating. ``practice`` = 1 marks a practice query: kept only to know where the
participant is, never exported, reported or used to infer them.

A database made before typed questions is upgraded in place when next checked
(:meth:`StudyStore.check`): the new columns and tables are added, every old query is an
``about-equal`` pair (the page it was asked on), nothing else changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robopref.study.questions import PAIR_KINDS, RATING_LEVELS

DB_NAME = "study.sqlite"
#: the tables a study database holds (a file without them is not one)
#: (steps and finals, added with typed questions, are created by the upgrade when missing)
TABLES = ("participants", "queries", "answers", "robots")
#: the prefix of a hashed token in the participants table
TOKEN_HASH = "sha256:"
#: SQLite's INTEGER range: a query id outside it names no query
MAX_ID = 2**63 - 1
#: the answers a participant can give, as the page's buttons name them
CHOICES = ("left", "right", "equal", "cant_tell")
#: a ranking's or a rating's answer (the answer itself is in the ``answer`` column)
TYPED_CHOICES = ("ranked", "rated")
#: the final choice between the participant's two robots
FINAL_CHOICES = ("left", "right", "equal")
#: a final row's columns
FINAL_COLUMNS = (
    "left", "shown_at", "choice", "chosen_at", "rating_left", "rating_right", "rated_at",
)  # fmt: skip
#: the participant's steps before the questions
STEPS = ("welcome", "consent", "declined")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS participants (
    id INTEGER PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY,
    participant INTEGER NOT NULL REFERENCES participants(id),
    position INTEGER NOT NULL,
    pair INTEGER,
    swapped INTEGER NOT NULL CHECK (swapped IN (0, 1)),
    shown_at REAL NOT NULL,
    kind TEXT NOT NULL DEFAULT 'about-equal',
    items TEXT,
    practice INTEGER NOT NULL DEFAULT 0,
    UNIQUE (participant, position),
    UNIQUE (participant, pair)
);
CREATE TABLE IF NOT EXISTS answers (
    query INTEGER PRIMARY KEY REFERENCES queries(id),
    participant INTEGER NOT NULL REFERENCES participants(id),
    choice TEXT NOT NULL
        CHECK (choice IN ('left', 'right', 'equal', 'cant_tell', 'ranked', 'rated')),
    label REAL,
    response_ms REAL NOT NULL,
    client_ms REAL,
    answered_at REAL NOT NULL,
    answer TEXT
);
CREATE TABLE IF NOT EXISTS robots (
    participant INTEGER PRIMARY KEY REFERENCES participants(id),
    status TEXT NOT NULL CHECK (status IN ('rendering', 'ready', 'failed')),
    z TEXT,
    error TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    participant INTEGER NOT NULL REFERENCES participants(id),
    step TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (participant, step)
);
CREATE TABLE IF NOT EXISTS finals (
    participant INTEGER PRIMARY KEY REFERENCES participants(id),
    left TEXT NOT NULL,
    shown_at REAL NOT NULL,
    choice TEXT CHECK (choice IN ('left', 'right', 'equal')),
    chosen_at REAL,
    rating_left INTEGER CHECK (rating_left BETWEEN 1 AND {RATING_LEVELS}),
    rating_right INTEGER CHECK (rating_right BETWEEN 1 AND {RATING_LEVELS}),
    rated_at REAL
);
"""
#: the columns a database made before typed questions lacks, and how they are added
UPGRADES = (
    ("queries", "kind", "ALTER TABLE queries ADD COLUMN kind TEXT NOT NULL DEFAULT 'about-equal'"),
    ("queries", "items", "ALTER TABLE queries ADD COLUMN items TEXT"),
    ("queries", "practice", "ALTER TABLE queries ADD COLUMN practice INTEGER NOT NULL DEFAULT 0"),
    ("answers", "answer", "ALTER TABLE answers ADD COLUMN answer TEXT"),
)


def hash_token(token: str) -> str:
    """What the database keeps of a link's token: ``sha256:`` and its hex digest."""
    return TOKEN_HASH + hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Participant:
    """One participant: the row id, the hash of their link's token and the public name
    (``p01``). The token itself is only in the link (``links.txt``)."""

    id: int
    token_hash: str
    name: str


@dataclass(frozen=True)
class ShownQuery:
    """A query shown to a participant: its position (0-based, practice first), the pool
    pair and its order (pair types), or the items in shown order (a ranking, a rating)."""

    id: int
    participant: int
    position: int
    pair: int | None
    swapped: bool
    shown_at: float
    kind: str = "about-equal"
    items: tuple[int, ...] = ()
    practice: bool = False


#: the columns a ShownQuery is read from
QUERY_COLUMNS = (
    "q.id, q.participant, q.position, q.pair, q.swapped, q.shown_at, q.kind, q.items, q.practice"
)


def _shown(row: Any) -> ShownQuery:
    items = tuple(json.loads(row[7])) if row[7] else ()
    pair = None if row[3] is None else int(row[3])
    return ShownQuery(
        row[0], row[1], row[2], pair, bool(row[4]), row[5], row[6], items, bool(row[8])
    )


class StudyRefusedError(Exception):
    """A request the study refuses: ``status`` is the HTTP status, the message the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def label_of(choice: str, swapped: bool) -> float | None:
    """P(pool segment A preferred) for a ``choice`` about a query shown in that order."""
    if choice not in CHOICES:
        raise StudyRefusedError(422, f"choice {choice!r} is not one of {list(CHOICES)}")
    if choice == "equal":
        return 0.5
    if choice == "cant_tell":
        return None
    left_is_a = not swapped
    return 1.0 if (choice == "left") == left_is_a else 0.0


def answer_of(shown: ShownQuery, choice: str, given: object = None) -> tuple[float | None, object]:
    """``(label, stored answer)`` of ``choice`` (and ``given``) to ``shown``, or 422.

    A pair type's label is P(pool segment A preferred) (:func:`label_of`; ``pair`` has no
    "equal"); a ranking's stored answer is its items best first (``given``: the shown
    positions, best first: a permutation); a rating's the rating (``given``: 1-7)."""
    if choice == "cant_tell":
        return None, None
    if shown.kind in PAIR_KINDS:
        if choice == "equal" and shown.kind == "pair":
            raise StudyRefusedError(422, "this question has no 'equal': answer left or right")
        if choice in TYPED_CHOICES:
            raise StudyRefusedError(422, f"choice {choice!r}: this is a {shown.kind} question")
        return label_of(choice, shown.swapped), None
    wanted = "ranked" if shown.kind == "ranking" else "rated"
    if choice != wanted:
        raise StudyRefusedError(
            422, f"choice {choice!r}: a {shown.kind} is answered {wanted!r} (or 'cant_tell')"
        )
    if shown.kind == "ranking":
        order = given if isinstance(given, list) else None
        positions = list(range(len(shown.items)))
        if (
            order is None
            or any(isinstance(i, bool) or not isinstance(i, int) for i in order)
            or (sorted(order) != positions)
        ):
            raise StudyRefusedError(
                422,
                f"a ranking's order must list the shown positions {positions} once each, "
                f"best first; got {str(given)[:60]}",
            )
        return None, [shown.items[i] for i in order]
    return None, check_rating(given)


def check_rating(value: object) -> int:
    """A rating (an integer, or its digits as a form sends them) on the study's 1 ..
    :data:`~robopref.study.questions.RATING_LEVELS` scale, else 422."""
    text = str(value).strip()
    if isinstance(value, int) and not isinstance(value, bool):
        rating = value
    elif isinstance(value, str) and text.isascii() and text.isdigit() and len(text) <= 3:
        rating = int(text)
    else:
        raise StudyRefusedError(422, f"a rating must be a whole number; got {text[:40]!r}")
    if not 1 <= rating <= RATING_LEVELS:
        raise StudyRefusedError(422, f"a rating must be 1-{RATING_LEVELS}; got {text[:40]!r}")
    return rating


def check_query_id(query: object) -> int:
    """``query`` as a query id (an integer 1 .. 2**63 - 1, SQLite's range), else 422."""
    if isinstance(query, float) and query.is_integer():
        query = int(query)
    if isinstance(query, bool) or not isinstance(query, int) or not 0 < query <= MAX_ID:
        shown = repr(query) if len(repr(query)) <= 40 else repr(query)[:40] + "..."
        raise StudyRefusedError(
            422, f"query {shown} is not a query id: send the id next.json gave (an integer)"
        )
    return query


class StudyStore:
    """The database of one study folder (module docstring). One connection per call."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection; with ``write``, inside one ``BEGIN IMMEDIATE`` transaction.

        The file must exist (``mode=rw``): a deleted database is an error, never a new
        empty one."""
        uri = f"{self.path.absolute().as_uri()}?mode=rw"
        connection = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
        try:
            connection.execute("PRAGMA busy_timeout = 30000")
            connection.execute("PRAGMA foreign_keys = ON")
            if write:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            else:
                yield connection
        finally:
            connection.close()

    def create(self, tokens: list[str]) -> list[Participant]:
        """A new database (mode 0600) with one participant per token (named p01, p02, ...);
        only the tokens' hashes are stored."""
        try:  # private from the first byte: SQLite gives -wal and -shm the same mode
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise FileExistsError(f"{self.path} exists: a study is created once") from None
        connection = sqlite3.connect(self.path)
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.executescript(SCHEMA)
            width = max(2, len(str(len(tokens))))
            rows = [(hash_token(token), f"p{i + 1:0{width}d}") for i, token in enumerate(tokens)]
            with connection:
                connection.executemany("INSERT INTO participants (token, name) VALUES (?, ?)", rows)
        finally:
            connection.close()
        return self.participants()

    def check(self) -> None:
        """Refuse, with the fix, a study folder whose database is missing or damaged."""
        if not self.path.is_file():
            raise FileNotFoundError(
                f"{self.folder} has no {DB_NAME} (its participants, links and answers): "
                f"restore {DB_NAME} from a backup; a study cannot run without it (for a new "
                "one: `robopref study create`)"
            )
        try:
            with self.connect() as db:
                tables = {
                    row[0]
                    for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                }
        except sqlite3.DatabaseError as error:
            raise ValueError(
                f"{self.path} is not a readable SQLite database ({error}): restore it from a backup"
            ) from error
        missing = [table for table in TABLES if table not in tables]
        if missing:
            raise ValueError(
                f"{self.path} is not a study database (no table {', '.join(missing)}): "
                f"restore {DB_NAME} from a backup"
            )
        self.upgrade()

    def upgrade(self) -> None:
        """Add what a database made before typed questions lacks (module docstring)."""
        with self.connect(write=True) as db:
            for table, column, statement in UPGRADES:
                names = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in names:
                    db.execute(statement)
            for statement in SCHEMA.split(";"):
                if "IF NOT EXISTS steps" in statement or "IF NOT EXISTS finals" in statement:
                    db.execute(statement)

    def make_private(self) -> None:
        """Make the database and its ``-wal``/``-shm`` files readable by their owner only
        (a study created before they were made so)."""
        for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            try:
                if path.is_file() and path.stat().st_mode & 0o077:
                    path.chmod(0o600)
            except OSError:  # not ours to change: leave it as it is
                pass

    def hash_tokens(self) -> int:
        """Replace plain-text tokens (a study created before they were hashed) by their
        hashes; the links stay valid. Returns how many were hashed."""
        with self.connect(write=True) as db:
            db.create_function("hash_token", 1, hash_token, deterministic=True)
            cursor = db.execute(
                "UPDATE participants SET token = hash_token(token) WHERE token NOT LIKE ?",
                (TOKEN_HASH + "%",),
            )
            return int(cursor.rowcount)

    def participants(self) -> list[Participant]:
        """Every participant, in order."""
        with self.connect() as db:
            rows = db.execute("SELECT id, token, name FROM participants ORDER BY id").fetchall()
        return [Participant(*row) for row in rows]

    def participant(self, token: str) -> Participant:
        """The participant of a link's token (looked up by its hash); an unknown token is
        refused (404)."""
        with self.connect() as db:
            row = db.execute(
                "SELECT id, token, name FROM participants WHERE token = ?", (hash_token(token),)
            ).fetchone()
        if row is None:
            raise StudyRefusedError(404, "unknown participant link: check the link you were given")
        return Participant(*row)

    def shown(self, participant: int, practice: bool | None = None) -> list[ShownQuery]:
        """The queries shown to ``participant``, in order (``practice``: only practice
        queries, or only recorded ones; None: all)."""
        where = "" if practice is None else f" AND q.practice = {int(practice)}"
        with self.connect() as db:
            rows = db.execute(
                f"SELECT {QUERY_COLUMNS} FROM queries q WHERE q.participant = ?{where} "
                "ORDER BY q.position",
                (participant,),
            ).fetchall()
        return [_shown(r) for r in rows]

    def answered(self, participant: int) -> list[tuple[int, float | None]]:
        """``(pair, label)`` of each answered recorded pair query of ``participant``, in
        the asked order (what BALD and "your robot" read of pair-only studies)."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT q.pair, a.label FROM answers a JOIN queries q ON q.id = a.query "
                "WHERE a.participant = ? AND q.practice = 0 AND q.pair IS NOT NULL "
                "ORDER BY q.position",
                (participant,),
            ).fetchall()
        return [(int(pair), label) for pair, label in rows]

    def open_query(self, participant: int) -> ShownQuery | None:
        """The query shown to ``participant`` and not answered yet, if any."""
        with self.connect() as db:
            return self._open_query(db, participant)

    @staticmethod
    def _open_query(db: sqlite3.Connection, participant: int) -> ShownQuery | None:
        row = db.execute(
            f"SELECT {QUERY_COLUMNS} FROM queries q LEFT JOIN answers a ON a.query = q.id "
            "WHERE q.participant = ? AND a.query IS NULL ORDER BY q.position LIMIT 1",
            (participant,),
        ).fetchone()
        return None if row is None else _shown(row)

    def show(
        self,
        participant: int,
        pair: int | None = None,
        swapped: bool = False,
        position: int | None = None,
        kind: str = "about-equal",
        items: tuple[int, ...] = (),
        practice: bool = False,
    ) -> ShownQuery | None:
        """Record the participant's next query (a ``pair`` of the pool, or ``items``); an
        open one is returned instead (a reload or a second tab shows the same query).

        ``position``: how many queries the participant had been shown when it was chosen;
        if that changed since (another request of theirs showed one), or ``pair`` was shown
        to them before, nothing is written and None says "choose again"."""
        with self.connect(write=True) as db:
            existing = self._open_query(db, participant)
            if existing is not None:
                return existing
            (count,) = db.execute(
                "SELECT COUNT(*) FROM queries WHERE participant = ?", (participant,)
            ).fetchone()
            if position is not None and count != position:
                return None
            position = count
            if (
                pair is not None
                and db.execute(
                    "SELECT 1 FROM queries WHERE participant = ? AND pair = ?", (participant, pair)
                ).fetchone()
            ):
                return None
            now = time.time()
            cursor = db.execute(
                "INSERT INTO queries (participant, position, pair, swapped, shown_at, kind, "
                "items, practice) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    participant, position, pair, int(swapped), now, kind,
                    json.dumps(list(items)) if items else None, int(practice),
                ),
            )  # fmt: skip
            return ShownQuery(
                int(cursor.lastrowid or 0), participant, position, pair, swapped, now, kind,
                tuple(items), practice,
            )  # fmt: skip

    def answer(
        self,
        participant: int,
        query: int,
        choice: str,
        client_ms: float | None,
        given: object = None,
    ) -> ShownQuery:
        """Store one answer in one transaction, or refuse it with nothing written: a query
        that does not exist (404), another participant's (403), one answered before (409:
        a replay), an answer its type does not take (422). ``given``: a ranking's order
        (the shown positions, best first) or a rating (1-7)."""
        if client_ms is not None and not 0.0 <= client_ms < 86_400_000.0:
            raise StudyRefusedError(
                422, f"client_ms={client_ms} must be a time in [0, 1 day) in ms"
            )
        check_query_id(query)
        with self.connect(write=True) as db:
            row = db.execute(
                f"SELECT {QUERY_COLUMNS} FROM queries q WHERE q.id = ?", (query,)
            ).fetchone()
            if row is None:
                raise StudyRefusedError(404, f"query {query} does not exist")
            shown = _shown(row)
            if shown.participant != participant:
                raise StudyRefusedError(403, f"query {query} was not shown to you")
            if db.execute("SELECT 1 FROM answers WHERE query = ?", (query,)).fetchone():
                raise StudyRefusedError(
                    409, f"query {query} is answered already: answers are final"
                )
            label, stored = answer_of(shown, choice, given)
            now = time.time()
            db.execute(
                "INSERT INTO answers (query, participant, choice, label, response_ms, client_ms, "
                "answered_at, answer) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    query, participant, choice, label, 1000.0 * (now - shown.shown_at),
                    client_ms, now, None if stored is None else json.dumps(stored),
                ),
            )  # fmt: skip
        return shown

    # ------------------------------------------------------------------ steps, the end
    def steps(self, participant: int) -> set[str]:
        """The steps the participant has taken (``welcome``, ``consent``, ``declined``)."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT step FROM steps WHERE participant = ?", (participant,)
            ).fetchall()
        return {row[0] for row in rows}

    def take_step(self, participant: int, step: str) -> None:
        """Record a step (once: taking it again changes nothing)."""
        if step not in STEPS:
            raise StudyRefusedError(422, f"step {step!r} is not one of {list(STEPS)}")
        with self.connect(write=True) as db:
            db.execute(
                "INSERT OR IGNORE INTO steps (participant, step, at) VALUES (?, ?, ?)",
                (participant, step, time.time()),
            )

    def final(self, participant: int) -> dict[str, Any] | None:
        """The participant's final row (which robot was on the left, choice, ratings)."""
        with self.connect() as db:
            row = db.execute(
                "SELECT left, shown_at, choice, chosen_at, rating_left, rating_right, rated_at "
                "FROM finals WHERE participant = ?",
                (participant,),
            ).fetchone()
        keys = FINAL_COLUMNS
        return None if row is None else dict(zip(keys, row, strict=True))

    def show_final(self, participant: int, left: str) -> dict[str, Any]:
        """Record that the final choice was shown with robot ``left`` on the left (the first
        showing counts; a reload keeps that order)."""
        with self.connect(write=True) as db:
            db.execute(
                "INSERT OR IGNORE INTO finals (participant, left, shown_at) VALUES (?, ?, ?)",
                (participant, left, time.time()),
            )
        final = self.final(participant)
        assert final is not None
        return final

    def choose_final(self, participant: int, choice: str) -> None:
        """Store the final choice (left, right or equal) once: a second one is refused (409),
        one before the robots were shown too (409)."""
        if choice not in FINAL_CHOICES:
            raise StudyRefusedError(422, f"choice {choice!r} is not one of {list(FINAL_CHOICES)}")
        with self.connect(write=True) as db:
            cursor = db.execute(
                "UPDATE finals SET choice = ?, chosen_at = ? WHERE participant = ? "
                "AND choice IS NULL",
                (choice, time.time(), participant),
            )
            if cursor.rowcount != 1:
                raise StudyRefusedError(
                    409, "the final choice is made already, or the robots were not shown yet"
                )

    def rate_final(self, participant: int, left: object, right: object) -> None:
        """Store the 1-7 ratings of the left and right robot once, after the choice."""
        left, right = check_rating(left), check_rating(right)
        with self.connect(write=True) as db:
            cursor = db.execute(
                "UPDATE finals SET rating_left = ?, rating_right = ?, rated_at = ? "
                "WHERE participant = ? AND choice IS NOT NULL AND rated_at IS NULL",
                (left, right, time.time(), participant),
            )
            if cursor.rowcount != 1:
                raise StudyRefusedError(
                    409, "the robots are rated already, or the final choice is not made yet"
                )

    def all_finals(self) -> list[dict[str, Any]]:
        """Every final row with its participant's name (report)."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT p.name, f.participant, f.left, f.shown_at, f.choice, f.chosen_at, "
                "f.rating_left, f.rating_right, f.rated_at FROM finals f "
                "JOIN participants p ON p.id = f.participant ORDER BY f.participant"
            ).fetchall()
        keys = (
            "name", "participant", "left", "shown_at", "choice", "chosen_at", "rating_left",
            "rating_right", "rated_at",
        )  # fmt: skip
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def set_robot(
        self, participant: int, status: str, z: str | None = None, error: str | None = None
    ) -> None:
        """Record the state of a participant's "your robot" clips."""
        with self.connect(write=True) as db:
            db.execute(
                "INSERT INTO robots (participant, status, z, error, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(participant) DO UPDATE SET "
                "status = excluded.status, z = excluded.z, error = excluded.error, "
                "updated_at = excluded.updated_at",
                (participant, status, z, error, time.time()),
            )

    def robot(self, participant: int) -> tuple[str, str | None, str | None] | None:
        """``(status, z JSON, error)`` of the participant's robot clips, if started."""
        with self.connect() as db:
            row = db.execute(
                "SELECT status, z, error FROM robots WHERE participant = ?", (participant,)
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def all_answers(
        self, practice: bool = False, participant: int | None = None
    ) -> list[dict[str, Any]]:
        """Every recorded answer (``practice``: the practice answers instead; ``participant``:
        one participant's only) with its query, in participant then asked order (export,
        report). ``items`` and ``answer`` are decoded from JSON."""
        who = "" if participant is None else f" AND q.participant = {int(participant)}"
        with self.connect() as db:
            rows = db.execute(
                "SELECT p.name, q.participant, q.position, q.pair, q.swapped, a.choice, a.label, "
                "a.response_ms, a.client_ms, a.answered_at, q.kind, q.items, a.answer "
                "FROM answers a JOIN queries q ON q.id = a.query "
                f"JOIN participants p ON p.id = q.participant WHERE q.practice = ?{who} "
                "ORDER BY q.participant, q.position",
                (int(practice),),
            ).fetchall()
        keys = (
            "name", "participant", "position", "pair", "swapped", "choice", "label",
            "response_ms", "client_ms", "answered_at", "kind", "items", "answer",
        )  # fmt: skip
        out = []
        for row in rows:
            record = dict(zip(keys, row, strict=True))
            record["items"] = json.loads(record["items"]) if record["items"] else []
            record["answer"] = None if record["answer"] is None else json.loads(record["answer"])
            out.append(record)
        return out
