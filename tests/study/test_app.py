"""The study's pages and JSON routes through FastAPI's test client, export and report."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from robopref.data.dataset import PreferenceDataset
from robopref.reward.active import answers_posterior
from robopref.reward.train_command import TrainRewardOptions, train_reward_command
from robopref.study.app import Study, create_app
from robopref.study.create import StudyCreateOptions, create_study
from robopref.study.export import StudyExportOptions, study_dataset, study_export_command
from robopref.study.flow import posterior_of
from robopref.study.report import study_report
from robopref.study.spec import StudySpec, read_links
from robopref.study.store import StudyStore

CHECKPOINTS = Path(__file__).resolve().parents[2] / "robopref" / "policies" / "checkpoints"


def _tokens(folder):
    return list(read_links(folder).values())


def _wait_for_robot(client, token, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = client.get(f"/s/{token}/robot.json").json()
        if state["status"] not in ("rendering", "waiting"):
            return state
        time.sleep(0.5)
    raise AssertionError("the robot clips were not rendered in time")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"queries": 20, "pairs": 10}, "exceeds --pairs"),
        ({"strategy": "active"}, "pass --reward"),
        ({"policy": str(CHECKPOINTS / "policy_vpl")}, "pass --reward"),
        ({"strategy": "sometimes"}, "use one of"),
        (
            {"reward": str(CHECKPOINTS / "btl.pt"), "strategy": "active"},
            "no user latent",
        ),
    ],
)
def test_create_refuses_bad_options_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_study(StudyCreateOptions(out=str(tmp_path / "s"), **kwargs), progress=False)
    assert not (tmp_path / "s").exists()


def test_create_refuses_an_existing_folder(active_study):
    with pytest.raises(ValueError, match="created once"):
        create_study(StudyCreateOptions(out=str(active_study)), progress=False)


def test_links_are_private_and_tokens_unguessable(active_study):
    links = (active_study / "links.txt").read_text().splitlines()
    assert len(links) == 3
    assert (active_study / "links.txt").stat().st_mode & 0o077 == 0
    for line, token in zip(links, _tokens(active_study), strict=True):
        assert line.endswith(f"/s/{token}") and len(token) >= 20


def test_a_participant_answers_by_form_then_chooses_blind_between_robots(active_study):
    token, other = _tokens(active_study)[:2]
    with TestClient(create_app(active_study)) as client:
        shown_pairs = []
        for n, choice in enumerate(["left", "right", "equal", "cant_tell"], start=1):
            page = client.get(f"/s/{token}")
            assert page.status_code == 200
            assert f"Query {n} of 4" in page.text
            assert f'<progress id="progress" value="{n}" max="4">' in page.text
            clips = re.findall(r'<video id="(?:left|right)" src="([^"]+)"', page.text)
            assert len(clips) == 2 and all(c.startswith(f"/s/{token}/clip/") for c in clips)
            served = client.get(clips[0])
            assert served.status_code == 200 and served.headers["content-type"] == "video/webm"
            query = int(re.search(r'name="query" value="(\d+)"', page.text).group(1))
            answer = client.post(
                f"/s/{token}/answer",
                data={"query": query, "choice": choice, "client_ms": "2100"},
                follow_redirects=False,
            )
            assert answer.status_code == 303 and answer.headers["location"] == f"/s/{token}"
            shown_pairs.append(StudyStore(active_study).shown(1)[-1].pair)
        assert len(set(shown_pairs)) == 4  # never the same pair twice
        state = _wait_for_robot(client, token)
        assert state["status"] == "ready", state
        final = client.get(f"/s/{token}")
        # Blind: the robots by side, never by name; the names' routes are closed.
        assert 'data-page="final"' in final.text and "Robot 1" in final.text
        assert "vpl" not in final.text.lower() and "btl" not in final.text.lower()
        assert client.get(f"/s/{token}/robot/vpl").status_code == 404
        clips = {side: client.get(f"/s/{token}/final/{side}") for side in ("left", "right")}
        assert all(c.status_code == 200 and len(c.content) > 1000 for c in clips.values())
        assert clips["left"].content != clips["right"].content
        # Another participant cannot fetch this one's robots: theirs are not rendered.
        assert client.get(f"/s/{other}/final/left").status_code == 404
        assert client.post(f"/s/{token}/final-rating", data={"rating_left": 3}).status_code == 409
        chosen = client.post(f"/s/{token}/final", data={"choice": "right"}, follow_redirects=False)
        assert chosen.status_code == 303
        assert client.post(f"/s/{token}/final", data={"choice": "left"}).status_code == 409
        rating = client.get(f"/s/{token}")
        assert 'data-page="final-rating"' in rating.text and 'name="rating_left"' in rating.text
        bad = client.post(f"/s/{token}/final-rating", data={"rating_left": 9, "rating_right": 2})
        assert bad.status_code == 422
        rated = client.post(f"/s/{token}/final-rating", data={"rating_left": 2, "rating_right": 6})
        assert rated.status_code == 200 and 'data-page="thanks"' in rated.text
        assert client.get(f"/s/{token}/next.json").json()["page"] == "thanks"
    rows = StudyStore(active_study).all_answers()
    assert [r["choice"] for r in rows] == ["left", "right", "equal", "cant_tell"]
    assert all(r["client_ms"] == 2100 and r["response_ms"] >= 0 for r in rows)
    robot = StudyStore(active_study).robot(1)
    assert robot[0] == "ready" and '"z"' in robot[1]
    final = StudyStore(active_study).final(1)
    assert final["choice"] == "right" and (final["rating_left"], final["rating_right"]) == (2, 6)
    assert final["left"] in ("vpl", "btl")


def test_refusals_have_clear_statuses_and_write_nothing(active_study):
    one, two, _ = _tokens(active_study)
    with TestClient(create_app(active_study)) as client:
        mine = client.get(f"/s/{one}/next.json").json()
        theirs = client.get(f"/s/{two}/next.json").json()
        assert client.get("/s/not-a-token").status_code == 404
        assert client.get("/s/not-a-token/next.json").status_code == 404
        forged = client.post(
            f"/s/{one}/answer.json", json={"query": theirs["query"], "choice": "left"}
        )
        assert forged.status_code == 403 and "not shown to you" in forged.json()["detail"]
        missing = client.post(f"/s/{one}/answer.json", json={"query": 9999, "choice": "left"})
        assert missing.status_code == 404
        bad = client.post(f"/s/{one}/answer.json", json={"query": mine["query"], "choice": "A!"})
        assert bad.status_code == 422
        garbage = client.post(f"/s/{one}/answer.json", content=b"{not json")
        assert garbage.status_code == 422
        assert (
            client.post(
                "/s/not-a-token/answer.json", json={"query": mine["query"], "choice": "left"}
            ).status_code
            == 404
        )
        for name in (
            "..%2fstudy.sqlite",
            "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            "%2Fetc%2Fpasswd",
            "x.webm%00",
        ):
            assert client.get(f"/s/{one}/clip/{name}").status_code == 403, name
        assert client.get(f"/s/{one}/clip/seg_e9999_t0000.webm").status_code == 404
        assert client.get(f"/s/{one}/robot/vpl").status_code == 404  # not done yet
        assert StudyStore(active_study).all_answers() == []
        first = client.post(
            f"/s/{one}/answer.json", json={"query": mine["query"], "choice": "left"}
        )
        assert first.status_code == 200 and first.json()["next"]["position"] == 2
        replay = client.post(
            f"/s/{one}/answer.json", json={"query": mine["query"], "choice": "right"}
        )
        assert replay.status_code == 409
    assert [r["choice"] for r in StudyStore(active_study).all_answers()] == ["left"]


def test_a_returning_participant_continues_where_they_stopped(active_study):
    token = _tokens(active_study)[0]
    with TestClient(create_app(active_study)) as client:
        first = client.get(f"/s/{token}/next.json").json()
        client.post(f"/s/{token}/answer.json", json={"query": first["query"], "choice": "left"})
        open_query = client.get(f"/s/{token}/next.json").json()
    with TestClient(create_app(active_study)) as client:  # a new server process's app
        again = client.get(f"/s/{token}/next.json").json()
    assert again == open_query and again["position"] == 2


def test_active_queries_follow_each_participants_answers(active_study):
    """BALD's first pick is the same for everybody (the prior); after different answers the
    participants' posteriors part, and each next pick is the most informative pair under
    the participant's own posterior. (Their picks need not part: in this small pool only a
    few pairs carry information at all, and BALD scores a posterior and its mirror image
    alike.)"""
    one, two, _ = _tokens(active_study)
    with TestClient(create_app(active_study)) as client:
        current = {t: client.get(f"/s/{t}/next.json").json() for t in (one, two)}
        store = StudyStore(active_study)
        assert store.shown(1)[0].pair == store.shown(2)[0].pair
        for position in range(4):  # the study's queries per participant
            # opposite answers: the first pair is both's, so their evidence differs (answers
            # that alternate can, by BALD's choice between a pair and its mirror, add up to
            # the same evidence as the other's: a tie broken by rounding)
            for token, want_a in ((one, True), (two, False)):
                participant = 1 if token == one else 2
                swapped = StudyStore(active_study).open_query(participant).swapped
                choice = "left" if want_a != swapped else "right"
                reply = client.post(
                    f"/s/{token}/answer.json",
                    json={"query": current[token]["query"], "choice": choice},
                )
                current[token] = reply.json()["next"]
            if position < 3:
                assert all(current[t] is not None for t in (one, two))
    labels = {p: [a for _, a in StudyStore(active_study).answered(p)] for p in (1, 2)}
    assert labels == {1: [1.0] * 4, 2: [0.0] * 4}
    study = Study(active_study)
    chooser, means = study.chooser, []
    for participant in (1, 2):
        answered = StudyStore(active_study).answered(participant)
        shown = [q.pair for q in StudyStore(active_study).shown(participant)]
        rows = StudyStore(active_study).all_answers(participant=participant)
        for count in range(1, 4):  # each later pick follows from the answers before it
            posterior, history = posterior_of(chooser.model, study.pool.pool, rows[:count])
            assert shown[count] == chooser.next_pair(participant, shown[:count], posterior, history)
        pairs = [pair for pair, _ in answered]
        context = (chooser.inputs[0][pairs], chooser.inputs[1][pairs], labels[participant])
        means.append(answers_posterior(chooser.model, (*context[:2], np.float32(context[2])))[0])
    study.close()
    assert np.abs(means[0] - means[1]).max() > 0.5


def test_export_is_a_dataset_train_reward_reads(active_study, tmp_path):
    tokens = _tokens(active_study)
    choices = {
        tokens[0]: ["left", "left", "right", "equal"],
        tokens[1]: ["right", "cant_tell"],
        tokens[2]: ["left", "right"],
    }
    with TestClient(create_app(active_study)) as client:
        for token, answers in choices.items():
            for choice in answers:
                query = client.get(f"/s/{token}/next.json").json()
                client.post(
                    f"/s/{token}/answer.json",
                    json={"query": query["query"], "choice": choice, "client_ms": 900},
                )
    out = tmp_path / "answers.npz"
    study_export_command(StudyExportOptions(study=str(active_study), out=str(out)))
    data = PreferenceDataset.load(out, expected_env="robopref/PlatePlacement-v0")
    rows = StudyStore(active_study).all_answers()
    assert data.n_pairs == 8 and data.n_users == 3
    assert data.user.tolist() == [0, 0, 0, 0, 1, 1, 2, 2]
    assert data.meta["annotators"] == ["p01", "p02", "p03"]
    assert data.meta["choice"] == [r["choice"] for r in rows]
    assert data.meta["shown_swapped"] == [bool(r["swapped"]) for r in rows]
    assert len(data.meta["response_ms"]) == 8 and data.meta["client_ms"] == [900.0] * 8
    expected = [
        {"equal": 0.5, "cant_tell": np.nan}.get(
            r["choice"], float((r["choice"] == "left") != r["swapped"])
        )
        for r in rows
    ]
    np.testing.assert_array_equal(data.label, np.asarray(expected, np.float32))
    spec = StudySpec.load(active_study)
    assert data.obs_a.shape[1] == spec.segment
    np.testing.assert_array_equal(data.feat_a, study_dataset(active_study).feat_a)
    with pytest.raises(ValueError, match="already exists"):
        study_export_command(StudyExportOptions(study=str(active_study), out=str(out)))
    model_path = tmp_path / "btl.pt"
    train_reward_command(
        TrainRewardOptions(data=str(out), model="btl", out=str(model_path), epochs=3, device="cpu")
    )
    assert model_path.exists()


def test_report_counts_agreement_and_position_bias(random_study):
    store = StudyStore(random_study)
    tokens = _tokens(random_study)[:3]
    with TestClient(create_app(random_study)) as client:
        for token in tokens:
            for _ in range(4):
                query = client.get(f"/s/{token}/next.json").json()
                client.post(
                    f"/s/{token}/answer.json",
                    json={"query": query["query"], "choice": "left"},
                )
    report = study_report(random_study)
    assert report["answers"] == 12 and report["finished"] == 3
    assert report["people"]["p01"]["left"] == 4 and report["people"]["p04"]["answers"] == 0
    assert report["position_bias"]["left_share"] == 1.0
    low, high = report["position_bias"]["ci95"]
    assert 0.5 < low < high <= 1.0  # always-left people: a bias the interval shows
    rows = store.all_answers()
    by_pair: dict[int, list[float]] = {}
    for r in rows:
        by_pair.setdefault(r["pair"], []).append(r["label"])
    pairs = [
        (a, b) for labels in by_pair.values() for i, a in enumerate(labels) for b in labels[i + 1 :]
    ]
    assert report["agreement"]["pairs_of_people"] == len(pairs)
    if pairs:
        assert report["agreement"]["rate"] == pytest.approx(np.mean([a == b for a, b in pairs]))


def test_a_place_step_clip_holds_its_whole_motion(tmp_path):
    """TableSetting's place interface moves an object in one step: its clip shows every
    simulated frame of the motion, not one frame per step."""
    import imageio.v2 as imageio

    spec = create_study(
        StudyCreateOptions(
            out=str(tmp_path / "table"), env="robopref/TableSetting-v0",
            env_kwargs=["control=place"], episodes=3, pairs=2, queries=1, participants=1,
        ),
        progress=False,
    )  # fmt: skip
    assert spec.segment == 4  # the reset and three place steps
    clip = sorted((tmp_path / "table" / "clips").glob("*.webm"))[0]
    reader = imageio.get_reader(clip)
    frames = [frame for frame in reader]  # noqa: C416  (list() asks the length: unknown)
    reader.close()
    assert len(frames) > 10 * spec.segment and frames[0].shape == (240, 320, 3)
