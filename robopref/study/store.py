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
    queries(id, participant, position, pair, swapped, shown_at)
        UNIQUE(participant, position), UNIQUE(participant, pair)
    answers(query PRIMARY KEY, participant, choice, label, response_ms, client_ms, answered_at)
    robots(participant PRIMARY KEY, status, z, error, updated_at)

``swapped`` = 1 when the pool's segment B was shown on the left: the order is randomised
per query and recorded, so position bias can be measured. ``label`` is P(A preferred) in the
pool's own order (1 = A, 0 = B, 0.5 = equal, NULL = can't tell), the dataset's convention.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DB_NAME = "study.sqlite"
#: the tables a study database holds (a file without them is not one)
TABLES = ("participants", "queries", "answers", "robots")
#: the prefix of a hashed token in the participants table
TOKEN_HASH = "sha256:"
#: SQLite's INTEGER range: a query id outside it names no query
MAX_ID = 2**63 - 1
#: the answers a participant can give, as the page's buttons name them
CHOICES = ("left", "right", "equal", "cant_tell")

SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    id INTEGER PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY,
    participant INTEGER NOT NULL REFERENCES participants(id),
    position INTEGER NOT NULL,
    pair INTEGER NOT NULL,
    swapped INTEGER NOT NULL CHECK (swapped IN (0, 1)),
    shown_at REAL NOT NULL,
    UNIQUE (participant, position),
    UNIQUE (participant, pair)
);
CREATE TABLE IF NOT EXISTS answers (
    query INTEGER PRIMARY KEY REFERENCES queries(id),
    participant INTEGER NOT NULL REFERENCES participants(id),
    choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'equal', 'cant_tell')),
    label REAL,
    response_ms REAL NOT NULL,
    client_ms REAL,
    answered_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS robots (
    participant INTEGER PRIMARY KEY REFERENCES participants(id),
    status TEXT NOT NULL CHECK (status IN ('rendering', 'ready', 'failed')),
    z TEXT,
    error TEXT,
    updated_at REAL NOT NULL
);
"""


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
    """A query shown to a participant: its position (0-based), the pool pair, the order."""

    id: int
    participant: int
    position: int
    pair: int
    swapped: bool
    shown_at: float


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

    def shown(self, participant: int) -> list[ShownQuery]:
        """The queries shown to ``participant``, in order."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT id, participant, position, pair, swapped, shown_at FROM queries "
                "WHERE participant = ? ORDER BY position",
                (participant,),
            ).fetchall()
        return [ShownQuery(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]

    def answered(self, participant: int) -> list[tuple[int, float | None]]:
        """``(pair, label)`` of each answered query of ``participant``, in the asked order."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT q.pair, a.label FROM answers a JOIN queries q ON q.id = a.query "
                "WHERE a.participant = ? ORDER BY q.position",
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
            "SELECT q.id, q.participant, q.position, q.pair, q.swapped, q.shown_at FROM queries q "
            "LEFT JOIN answers a ON a.query = q.id WHERE q.participant = ? AND a.query IS NULL "
            "ORDER BY q.position LIMIT 1",
            (participant,),
        ).fetchone()
        return (
            None
            if row is None
            else ShownQuery(row[0], row[1], row[2], row[3], bool(row[4]), row[5])
        )

    def show(
        self, participant: int, pair: int, swapped: bool, position: int | None = None
    ) -> ShownQuery | None:
        """Record ``pair`` as the participant's next query; an open one is returned instead
        (a reload or a second tab shows the same query).

        ``position``: how many queries the participant had been shown when ``pair`` was
        chosen; if that changed since (another request of theirs showed one), or ``pair``
        was shown to them before, nothing is written and None says "choose again"."""
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
            if db.execute(
                "SELECT 1 FROM queries WHERE participant = ? AND pair = ?", (participant, pair)
            ).fetchone():
                return None
            now = time.time()
            cursor = db.execute(
                "INSERT INTO queries (participant, position, pair, swapped, shown_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (participant, position, pair, int(swapped), now),
            )
            return ShownQuery(int(cursor.lastrowid or 0), participant, position, pair, swapped, now)

    def answer(
        self, participant: int, query: int, choice: str, client_ms: float | None
    ) -> ShownQuery:
        """Store one answer in one transaction, or refuse it with nothing written: a query
        that does not exist (404), another participant's (403), one answered before (409:
        a replay), an unknown choice (422)."""
        if client_ms is not None and not 0.0 <= client_ms < 86_400_000.0:
            raise StudyRefusedError(
                422, f"client_ms={client_ms} must be a time in [0, 1 day) in ms"
            )
        check_query_id(query)
        with self.connect(write=True) as db:
            row = db.execute(
                "SELECT id, participant, position, pair, swapped, shown_at FROM queries "
                "WHERE id = ?",
                (query,),
            ).fetchone()
            if row is None:
                raise StudyRefusedError(404, f"query {query} does not exist")
            shown = ShownQuery(row[0], row[1], row[2], row[3], bool(row[4]), row[5])
            if shown.participant != participant:
                raise StudyRefusedError(403, f"query {query} was not shown to you")
            if db.execute("SELECT 1 FROM answers WHERE query = ?", (query,)).fetchone():
                raise StudyRefusedError(
                    409, f"query {query} is answered already: answers are final"
                )
            label = label_of(choice, shown.swapped)
            now = time.time()
            db.execute(
                "INSERT INTO answers (query, participant, choice, label, response_ms, client_ms, "
                "answered_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    query,
                    participant,
                    choice,
                    label,
                    1000.0 * (now - shown.shown_at),
                    client_ms,
                    now,
                ),
            )
        return shown

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

    def all_answers(self) -> list[dict[str, object]]:
        """Every answer with its query, in participant then asked order (export, report)."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT p.name, q.participant, q.position, q.pair, q.swapped, a.choice, a.label, "
                "a.response_ms, a.client_ms, a.answered_at FROM answers a "
                "JOIN queries q ON q.id = a.query JOIN participants p ON p.id = q.participant "
                "ORDER BY q.participant, q.position"
            ).fetchall()
        keys = (
            "name", "participant", "position", "pair", "swapped", "choice", "label",
            "response_ms", "client_ms", "answered_at",
        )  # fmt: skip
        return [dict(zip(keys, row, strict=True)) for row in rows]
