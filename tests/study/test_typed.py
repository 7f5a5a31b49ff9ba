"""Studies with people: the study file, every question type's page and answer, the blind end,
the report's measurements, and synthetic participants over HTTP through a real server."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from robopref.reward.train_command import TrainRewardOptions, train_reward_command
from robopref.reward.typed_asking import parse_menu
from robopref.study.app import create_app
from robopref.study.create import StudyCreateOptions, create_study
from robopref.study.export import StudyExportOptions, study_dataset, study_export_command
from robopref.study.questions import implied_pairs, parse_question, question_at
from robopref.study.report import study_report
from robopref.study.spec import StudySpec, read_links
from robopref.study.store import StudyStore
from robopref.users.question_types import ANSWER_SECONDS, load_answer_costs

from .conftest import TYPED_STUDY_FILE


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def _typed_file(**changes: str) -> str:
    text = TYPED_STUDY_FILE
    for old, new in changes.items():
        text = text.replace(old, new)
    return text


# ----------------------------------------------------------------------- the study file
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"title:": "titel:"}, "unknown key"),
        ({'"ranking:3"': "ranking:9"}, "ranking question shows 3 or 4"),
        ({"end-state": "end-states"}, "question type 'end-states' is unknown"),
        ({"practice: 1": "practice: lots"}, "practice must be a whole number"),
        ({"policy_vpl": "policy_nowhere"}, "does not exist"),
        ({"consent: >": "consent: 3\nnothing: >"}, "unknown key"),
        ({"pairs: 12": "pairs: 4"}, "exceeds --pairs"),
    ],
)
def test_a_bad_study_file_is_refused_before_any_work(tmp_path, changes, message):
    path = _file(tmp_path, _typed_file(**changes))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        create_study(StudyCreateOptions(out=str(tmp_path / "s"), file=str(path)), progress=False)
    assert not (tmp_path / "s").exists()


def test_the_guides_study_file_is_valid():
    from robopref.study.study_file import read_study_file

    guide = Path(__file__).resolve().parents[2] / "docs" / "guide" / "study.yaml"
    settings, texts = read_study_file(guide)
    assert texts.title and texts.consent and settings["practice"] == 2
    assert Path(settings["policy"]).is_dir() and Path(settings["reward"]).is_file()


def test_a_setting_in_the_file_and_on_the_command_line_is_refused(tmp_path):
    path = _file(tmp_path, _typed_file())
    options = StudyCreateOptions(out=str(tmp_path / "s"), file=str(path), queries=6)
    with pytest.raises(ValueError, match="--queries given both"):
        create_study(options, progress=False)


def test_the_study_file_sets_what_participants_read(typed_study):
    spec = StudySpec.load(typed_study)
    assert spec.title.startswith("Where should the robot")
    assert "People differ" in spec.description and "no right answers" in spec.instructions
    assert spec.consent.startswith("Your answers") and spec.practice == 1
    assert spec.questions == ["pair", "ranking:3", "end-state", "rating"]
    assert (typed_study / "clips" / spec.example_clip).is_file()
    assert len(list((typed_study / "clips").glob("*.png"))) == len(
        list((typed_study / "clips").glob("*.webm"))
    )  # an end-state picture per clip


def test_types_are_asked_in_turn_after_the_practice():
    names = ["pair", "ranking:3", "rating"]
    kinds = [question_at(names, p, 2) for p in range(6)]
    assert [(k.name, practice) for k, practice in kinds] == [
        ("pair", True), ("ranking:3", True), ("pair", False), ("ranking:3", False),
        ("rating", False), ("pair", False),
    ]  # fmt: skip
    assert parse_question("about-equal").answer_model().kind == "weak-pair"


def test_implied_pairs_of_every_type():
    rows = [
        {"kind": "pair", "pair": 2, "label": 0.0, "participant": 1, "items": [], "answer": None},
        {"kind": "ranking", "pair": None, "label": None, "participant": 1, "items": [5, 1, 7],
         "answer": [7, 5, 1]},
        {"kind": "rating", "pair": None, "label": None, "participant": 1, "items": [3],
         "answer": 2},
        {"kind": "rating", "pair": None, "label": None, "participant": 1, "items": [4],
         "answer": 6},
        {"kind": "rating", "pair": None, "label": None, "participant": 2, "items": [4],
         "answer": 1},
        {"kind": "end-state", "pair": 0, "label": None, "participant": 1, "items": [],
         "answer": None},
    ]  # fmt: skip
    pairs = implied_pairs(rows, n_pairs=10)
    got = [(p.a, p.b, p.label, p.end_state) for p in pairs if not np.isnan(p.label)]
    assert got == [
        (2, 12, 0.0, False),
        (7, 5, 1.0, False),
        (7, 1, 1.0, False),
        (5, 1, 1.0, False),
        (3, 4, 0.0, False),
    ]  # fmt: skip  (participant 2's one rating pairs with nothing of participant 1's)
    skipped = [p for p in pairs if np.isnan(p.label)]
    assert [(p.a, p.b, p.end_state) for p in skipped] == [(0, 10, True)]


# ----------------------------------------------------------------------- the pages
def test_a_participant_goes_through_every_page_by_form(typed_study):
    token = next(iter(read_links(typed_study).values()))
    with TestClient(create_app(typed_study)) as client:
        page = client.get(f"/s/{token}").text
        assert 'data-page="welcome"' in page and "People differ" in page
        assert 'id="example"' in page
        # out of order: consent before the welcome is read
        assert client.post(f"/s/{token}/step", data={"step": "consent"}).status_code == 409
        client.post(f"/s/{token}/step", data={"step": "welcome"})
        assert 'data-page="consent"' in client.get(f"/s/{token}").text
        client.post(f"/s/{token}/step", data={"step": "consent"})
        page = client.get(f"/s/{token}").text
        assert 'data-kind="pair"' in page and 'id="practice"' in page and "Practice 1 of 1" in page
        assert 'id="choice-equal"' not in page  # a plain pair has no "about equal"
        query = _query_id(page)
        assert client.post(f"/s/{token}/answer", data={"query": query, "choice": "equal"}
                           ).status_code == 422  # fmt: skip
        client.post(f"/s/{token}/answer", data={"query": query, "choice": "left"})
        page = client.get(f"/s/{token}").text
        assert "Query 1 of 4" in page and 'id="practice"' not in page
        client.post(f"/s/{token}/answer", data={"query": _query_id(page), "choice": "right"})
        page = client.get(f"/s/{token}").text
        assert 'data-kind="ranking"' in page and page.count('name="rank_') == 3
        query = _query_id(page)
        for bad in ({"order": "0,0,1"}, {"order": "0,1"}, {"order": "x"}):
            reply = client.post(
                f"/s/{token}/answer", data={"query": query, "choice": "ranked", **bad}
            )
            assert reply.status_code == 422
        # without JavaScript: a rank per clip
        ranks = {"rank_0": "2", "rank_1": "3", "rank_2": "1"}
        client.post(f"/s/{token}/answer", data={"query": query, "choice": "ranked", **ranks})
        page = client.get(f"/s/{token}").text
        assert 'data-kind="end-state"' in page and page.count('class="picture"') == 2
        picture = client.get(f"/s/{token}/clip/" + page.split("/clip/")[1].split('"')[0])
        assert picture.headers["content-type"] == "image/png" and picture.content[:4] == b"\x89PNG"
        client.post(f"/s/{token}/answer", data={"query": _query_id(page), "choice": "equal"})
        page = client.get(f"/s/{token}").text
        assert 'data-kind="rating"' in page and 'type="range"' in page
        query = _query_id(page)
        body = {"query": query, "choice": "rated", "rating": "8"}
        assert client.post(f"/s/{token}/answer", data=body).status_code == 422
        client.post(f"/s/{token}/answer", data={"query": query, "choice": "rated", "rating": "6"})
        deadline = time.monotonic() + 120
        while 'data-page="robot"' in (page := client.get(f"/s/{token}").text):
            assert time.monotonic() < deadline, "the robots were not rendered in time"
            time.sleep(0.5)
        assert 'data-page="final"' in page
    store = StudyStore(typed_study)
    rows = store.all_answers()
    assert [r["kind"] for r in rows] == ["pair", "ranking", "end-state", "rating"]
    items = rows[1]["items"]
    assert rows[1]["answer"] == [items[2], items[0], items[1]]  # ranks 2, 3, 1
    assert rows[2]["label"] == 0.5 and rows[3]["answer"] == 6
    practice = store.all_answers(practice=True)
    assert [r["choice"] for r in practice] == ["left"]
    assert store.steps(1) == {"welcome", "consent"}


def _query_id(page: str) -> int:
    return int(page.split('name="query" value="')[1].split('"')[0])


def test_a_participant_who_declines_is_asked_nothing(typed_study):
    token = next(iter(read_links(typed_study).values()))
    with TestClient(create_app(typed_study)) as client:
        client.post(f"/s/{token}/step.json", json={"step": "welcome"})
        reply = client.post(f"/s/{token}/step.json", json={"step": "declined"})
        assert reply.json()["page"] == "declined"
        assert "nothing of yours is recorded" in client.get(f"/s/{token}").text
        assert client.get(f"/s/{token}/next.json").json()["page"] == "declined"
    assert StudyStore(typed_study).shown(1) == []


def test_an_old_study_database_is_upgraded_in_place(random_study):
    """A database made before typed questions: the new columns and tables are added, its
    answers read as about-equal pairs."""
    path = random_study / "study.sqlite"
    with sqlite3.connect(path) as db:  # back to the old schema (no rows yet)
        db.executescript(
            "DROP TABLE answers; DROP TABLE queries; DROP TABLE steps; DROP TABLE finals;"
            "CREATE TABLE queries (id INTEGER PRIMARY KEY, participant INTEGER NOT NULL, "
            "position INTEGER NOT NULL, pair INTEGER NOT NULL, swapped INTEGER NOT NULL, "
            "shown_at REAL NOT NULL, UNIQUE (participant, position), UNIQUE (participant, pair));"
            "CREATE TABLE answers (query INTEGER PRIMARY KEY, participant INTEGER NOT NULL, "
            "choice TEXT NOT NULL, label REAL, response_ms REAL NOT NULL, client_ms REAL, "
            "answered_at REAL NOT NULL);"
            "INSERT INTO queries VALUES (1, 1, 0, 3, 1, 0.0);"
            "INSERT INTO answers VALUES (1, 1, 'left', 0.0, 1200.0, NULL, 1.0);"
        )
    store = StudyStore(random_study)
    store.check()
    rows = store.all_answers()
    assert [(r["kind"], r["pair"], r["label"]) for r in rows] == [("about-equal", 3, 0.0)]
    assert store.steps(1) == set() and store.final(1) is None
    token = list(read_links(random_study).values())[0]
    with TestClient(create_app(random_study)) as client:
        state = client.get(f"/s/{token}/next.json").json()
        assert state["page"] == "query" and state["position"] == 2


# ----------------------------------------------------------------------- costs
def test_answer_costs_from_a_study_report_replace_the_documented_ones(tmp_path):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"costs": {"pair": 3.0, "ranking": 1.5}, "other": 1}))
    costs = load_answer_costs(report)
    menu = parse_menu("pair,ranking:4", costs=costs)
    assert [t.seconds() for t in menu.types] == [3.0, 6.0]
    assert parse_menu("best-of:4", costs=costs).types[0].seconds() == (
        4 * ANSWER_SECONDS["best-of"]
    )  # a type the study did not measure keeps its documented cost
    report.write_text(json.dumps({"costs": {"paired": 3.0}}))
    with pytest.raises(ValueError, match="'paired' is not a question type"):
        load_answer_costs(report)
    report.write_text(json.dumps({"costs": {"pair": -1}}))
    with pytest.raises(ValueError, match="give seconds > 0"):
        load_answer_costs(report)


# ----------------------------------------------------------------------- over HTTP
@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """Six synthetic participants take a mixed-type study through a real server, three at
    once; the records of what they meant."""
    import httpx2 as httpx

    from robopref.policies.personalize import new_users
    from robopref.study.load import free_port, start_server
    from robopref.study.synthetic import StudyEyes, take_part
    from robopref.tasks import task_goals
    from robopref.users.population import resolve_population

    folder = tmp_path_factory.mktemp("synthetic")
    text = _typed_file(**{
        "participants: 3": "participants: 6", "queries: 4": "queries: 10",
        'questions: [pair, "ranking:3", end-state, rating]':
            'questions: [pair, about-equal, "ranking:4", end-state, rating]',
        "pairs: 12": "pairs: 16", "episodes: 6": "episodes: 8",
    })  # fmt: skip
    create_study(StudyCreateOptions(out=str(folder / "s"), file=str(_file(folder, text))),
                 progress=False)  # fmt: skip
    study = folder / "s"
    env_id = StudySpec.load(study).env_id
    users = new_users(resolve_population("two-modes", task_goals(env_id)), 6, 7)
    eyes, links = StudyEyes(study), list(read_links(study).items())
    port = free_port()
    server = start_server(study, port)
    try:
        from concurrent.futures import ThreadPoolExecutor

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120.0) as client:

            def one(i):
                return take_part(client, links[i][1], links[i][0], users[i], eyes, i, 300.0)

            with ThreadPoolExecutor(max_workers=3) as pool:
                records = list(pool.map(one, range(6)))
    finally:
        server.terminate()
        server.wait(timeout=60)
    return study, records


def test_synthetic_participants_answers_are_stored_as_they_meant(synthetic_run):
    from robopref.study.synthetic import stored_as_meant

    study, records = synthetic_run
    assert stored_as_meant(study, records) == []
    assert all(len(r.meant) == 10 and r.practice == 1 for r in records)
    kinds = {m["kind"] for r in records for m in r.meant}
    assert kinds == {"pair", "about-equal", "ranking", "end-state", "rating"}
    store = StudyStore(study)
    assert len(store.all_answers()) == 60 and len(store.all_answers(practice=True)) == 6


def test_the_report_measures_the_blind_choice_and_seconds_per_type(synthetic_run):
    study, records = synthetic_run
    report = study_report(study)
    final = report["final"]
    scores = [
        0.5 if r.final["choice"] == "equal"
        else float((r.final["left"] if r.final["choice"] == "left"
                    else {"vpl": "btl", "btl": "vpl"}[r.final["left"]]) == "vpl")
        for r in records
    ]  # fmt: skip
    assert final["chose"] == 6 and final["win_rate"] == pytest.approx(np.mean(scores))
    low, high = final["win_rate_ci95"]
    assert low <= final["win_rate"] <= high
    vpl_ratings = [r.final["ratings"]["vpl"] for r in records]
    assert final["ratings"]["vpl"]["mean"] == pytest.approx(np.mean(vpl_ratings))
    assert set(report["answer_seconds"]["median_s"]) == {
        "pair", "about-equal", "ranking:4", "end-state", "rating",
    }  # fmt: skip
    assert all(2.0 <= s <= 9.0 for s in report["answer_seconds"]["median_s"].values())
    assert set(report["costs"]) == {"pair", "weak-pair", "ranking", "rating"}
    assert report["costs"]["ranking"] == pytest.approx(
        report["answer_seconds"]["median_s"]["ranking:4"] / 4, abs=0.01
    )


@pytest.mark.parametrize("model", ["vpl", "btl"])
def test_the_export_of_a_mixed_type_study_trains_a_reward_model(synthetic_run, tmp_path, model):
    study, _ = synthetic_run
    data = study_dataset(study)
    kinds = {data.meta["kind"][q] for q in data.question}
    assert kinds >= {"pair", "about-equal", "ranking", "end-state"}
    ranking = [q for q in set(data.question.tolist()) if data.meta["kind"][q] == "ranking"]
    assert all((data.question == q).sum() == 6 for q in ranking)  # a ranking of 4: 6 pairs
    out = tmp_path / "answers.npz"
    study_export_command(StudyExportOptions(study=str(study), out=str(out)))
    path = tmp_path / f"{model}.pt"
    train_reward_command(
        TrainRewardOptions(data=str(out), model=model, out=str(path), epochs=3, device="cpu")
    )
    assert path.exists()


def test_an_active_study_asks_the_ranking_that_tells_most(typed_study):
    """With ``active``, a ranking's clips are the most informative of the candidate sets:
    their BALD information is above nine in ten random sets' under the same posterior."""
    from robopref.study.choose import QueryChooser

    token = next(iter(read_links(typed_study).values()))
    with TestClient(create_app(typed_study)) as client:
        client.post(f"/s/{token}/step.json", json={"step": "welcome"})
        page = client.post(f"/s/{token}/step.json", json={"step": "consent"}).json()
        while page["kind"] != "ranking" or page["practice"]:
            choice = "cant_tell" if page["kind"] != "pair" else "left"
            page = client.post(
                f"/s/{token}/answer.json", json={"query": page["query"], "choice": choice}
            ).json()["next"]
        study = client.app.state.study
        participant = study.participant(token)
        query = study.store.open_query(participant.id)
        posterior, history = study.posterior(participant)
    chooser: QueryChooser = study.chooser
    ranking = parse_question("ranking:3").answer_model()
    rng = np.random.default_rng(11)
    sets = np.stack(
        [np.asarray(query.items)]
        + [rng.choice(chooser.distinct_items, 3, replace=False) for _ in range(200)]
    )
    from robopref.reward.typed_asking import ItemUtilities

    z = chooser._samples(query.position, posterior, history)
    utilities = chooser.scale * ItemUtilities(chooser.model, chooser.items, sets)(z)
    information = ranking.information(utilities.permute(1, 0, 2)).numpy()
    assert information[0] >= np.quantile(information[1:], 0.9)
