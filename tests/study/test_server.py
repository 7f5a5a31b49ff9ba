"""The real server (``robopref study serve`` in a subprocess): killed mid-study, it loses no
answer and participants continue; 20 participants answering at once are all stored once."""

from __future__ import annotations

import signal

import httpx2 as httpx

from robopref.study.load import answer_concurrently, free_port, start_server
from robopref.study.spec import read_links
from robopref.study.store import StudyStore


def test_serve_binds_loopback_by_default_and_refuses_a_non_study(tmp_path):
    from robopref.cli import main

    assert main(["study", "serve", "--study", str(tmp_path)]) == 2  # clear error, no server


def test_a_killed_server_loses_no_answer_and_participants_continue(random_study):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    token = read_links(random_study)["p01"]
    process = start_server(random_study, port)
    try:
        for choice in ("left", "right"):
            query = httpx.get(f"{base}/s/{token}/next.json").json()
            stored = httpx.post(
                f"{base}/s/{token}/answer.json", json={"query": query["query"], "choice": choice}
            )
            assert stored.status_code == 200
        open_query = httpx.get(f"{base}/s/{token}/next.json").json()
    finally:
        process.send_signal(signal.SIGKILL)  # no shutdown: what a crash does
        process.wait()
    assert [r["choice"] for r in StudyStore(random_study).all_answers()] == ["left", "right"]
    process = start_server(random_study, port)
    try:
        again = httpx.get(f"{base}/s/{token}/next.json").json()
        assert again == open_query and again["position"] == 3
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_twenty_participants_at_once_are_each_stored_once(random_study):
    port = free_port()
    store = StudyStore(random_study)
    tokens = list(read_links(random_study).values())
    assert len(tokens) == 20
    process = start_server(random_study, port)
    try:
        result = answer_concurrently(f"http://127.0.0.1:{port}", tokens, queries=4, deadline_s=240)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert result.failures == []
    assert result.answers == 20 * 4
    rows = store.all_answers()
    assert len(rows) == 80
    for participant in store.participants():
        mine = [r for r in rows if r["participant"] == participant.id]
        assert [r["position"] for r in mine] == [0, 1, 2, 3]
        assert len({r["pair"] for r in mine}) == 4
    with store.connect() as db:
        (queries,) = db.execute("SELECT COUNT(*) FROM queries").fetchone()
    assert queries == 80  # no query created twice under the concurrent reloads


def test_the_links_name_the_port_and_address_served(random_study, monkeypatch, capsys):
    """links.txt named port 8000 whatever --port said: serve rewrites it to what it serves
    (or to --public-url behind a proxy), the tokens unchanged."""
    import uvicorn

    from robopref.cli import main

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.append(kwargs))
    tokens = read_links(random_study)
    assert main(["study", "serve", "--study", str(random_study), "--port", "8123"]) == 0
    assert served[-1]["port"] == 8123
    lines = (random_study / "links.txt").read_text().splitlines()
    assert lines[0] == f"p01 http://127.0.0.1:8123/s/{tokens['p01']}"
    assert read_links(random_study) == tokens and len(lines) == len(tokens)
    assert (random_study / "links.txt").stat().st_mode & 0o077 == 0  # still private
    proxy = ["--public-url", "https://lab.example.org/study/"]
    assert main(["study", "serve", "--study", str(random_study), *proxy]) == 0
    assert (
        f"https://lab.example.org/study/s/{tokens['p02']}"
        in (random_study / "links.txt").read_text()
    )
    assert main(["study", "serve", "--study", str(random_study), "--public-url", "lab"]) == 2
    assert "must be an address starting with http" in capsys.readouterr().err
