"""The study database: labels in the pool's order, refusals that write nothing, WAL."""

from __future__ import annotations

import sqlite3

import pytest

from robopref.study.store import StudyRefusedError, StudyStore, label_of


@pytest.mark.parametrize(
    ("choice", "swapped", "label"),
    [
        ("left", False, 1.0),
        ("right", False, 0.0),
        ("left", True, 0.0),
        ("right", True, 1.0),
        ("equal", True, 0.5),
        ("cant_tell", False, None),
    ],
)
def test_labels_are_in_the_pools_order_whatever_was_shown_left(choice, swapped, label):
    assert label_of(choice, swapped) == label


def _store(tmp_path) -> StudyStore:
    store = StudyStore(tmp_path)
    store.create(["token-one", "token-two"])
    return store


def _count(store: StudyStore, table: str) -> int:
    with store.connect() as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_the_database_is_wal_and_created_once(tmp_path):
    store = _store(tmp_path)
    with store.connect() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(FileExistsError):
        store.create(["again"])
    assert [p.name for p in store.participants()] == ["p01", "p02"]


def test_a_shown_query_is_shown_again_until_answered(tmp_path):
    store = _store(tmp_path)
    one = store.participant("token-one")
    first = store.show(one.id, pair=3, swapped=True)
    assert store.show(one.id, pair=5, swapped=False) == first  # a reload: the same query
    store.answer(one.id, first.id, "left", 1500.0)
    second = store.show(one.id, pair=5, swapped=False)
    assert (second.position, second.pair) == (1, 5)
    assert store.answered(one.id) == [(3, 0.0)]  # left was B: the label says B


def test_refusals_write_nothing(tmp_path):
    store = _store(tmp_path)
    one, two = store.participant("token-one"), store.participant("token-two")
    query = store.show(one.id, pair=0, swapped=False)
    with pytest.raises(StudyRefusedError) as unknown:
        store.participant("forged")
    with pytest.raises(StudyRefusedError) as other:
        store.answer(two.id, query.id, "left", None)
    with pytest.raises(StudyRefusedError) as missing:
        store.answer(one.id, query.id + 100, "left", None)
    with pytest.raises(StudyRefusedError) as bad_choice:
        store.answer(one.id, query.id, "both", None)
    with pytest.raises(StudyRefusedError) as bad_time:
        store.answer(one.id, query.id, "left", -5.0)
    assert _count(store, "answers") == 0
    store.answer(one.id, query.id, "right", None)
    with pytest.raises(StudyRefusedError) as replay:
        store.answer(one.id, query.id, "left", None)
    statuses = [e.value.status for e in (unknown, other, missing, bad_choice, bad_time, replay)]
    assert statuses == [404, 403, 404, 422, 422, 409]
    assert _count(store, "answers") == 1
    with store.connect() as db:
        assert db.execute("SELECT choice FROM answers").fetchone()[0] == "right"


def test_the_schema_refuses_a_second_answer_even_past_the_checks(tmp_path):
    store = _store(tmp_path)
    one = store.participant("token-one")
    query = store.show(one.id, pair=0, swapped=False)
    store.answer(one.id, query.id, "left", None)
    with store.connect() as db, pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "INSERT INTO answers (query, participant, choice, label, response_ms, answered_at) "
            "VALUES (?, ?, 'left', 1, 0, 0)",
            (query.id, one.id),
        )
