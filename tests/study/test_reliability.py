"""The study under bad input (the reliability sweep): oversized bodies, secrets on disk,
races and out-of-range ids, damaged or half-built folders, outputs that cannot be written."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import stat
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from robopref.cli import main
from robopref.study import create as create_module
from robopref.study import spec as spec_module
from robopref.study.app import MAX_BODY, create_app
from robopref.study.create import BUILDING_MARK, StudyCreateOptions, create_study
from robopref.study.export import StudyExportOptions, study_export_command
from robopref.study.report import StudyReportOptions, study_report_command
from robopref.study.spec import read_links, write_private
from robopref.study.store import DB_NAME, StudyStore, hash_token

CHECKPOINTS = Path(__file__).resolve().parents[2] / "robopref" / "policies" / "checkpoints"
CHUNK = 64 * 1024


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tokens(folder: Path) -> list[str]:
    return list(read_links(folder).values())


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


# ----------------------------------------------------------------- 1. request-size limit
def _post_streamed(app, path: str, total: int, headers=()) -> tuple[int, int]:
    """POST ``total`` bytes to ``path`` through the ASGI interface in 64 KB chunks; the
    response status and how many bytes the app pulled."""
    pulled = 0

    async def receive():
        nonlocal pulled
        if pulled >= total:
            await asyncio.sleep(3600)  # a client that sends nothing more
        size = min(CHUNK, total - pulled)
        pulled += size
        return {"type": "http.request", "body": b"x" * size, "more_body": pulled < total}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 60))
    return sent[0]["status"], pulled


@pytest.mark.parametrize("route", ["answer.json", "answer"])
def test_a_big_answer_body_is_never_read_past_the_limit(random_study, route):
    app = create_app(random_study)
    token = _tokens(random_study)[0]
    big = 100 * 1024 * 1024  # 100 MB, streamed without a Content-Length
    status, pulled = _post_streamed(app, f"/s/not-a-real-token/{route}", big)
    assert status == 404 and pulled == 0  # the token is checked before the body is read
    status, pulled = _post_streamed(app, f"/s/{token}/{route}", big)
    assert status == 413 and pulled <= MAX_BODY + CHUNK
    declared = [(b"content-length", str(big).encode())]
    status, pulled = _post_streamed(app, f"/s/{token}/{route}", big, declared)
    assert status == 413 and pulled == 0
    assert StudyStore(random_study).all_answers() == []


# ----------------------------------------------------------------- 2. secrets on disk
def test_the_studys_secrets_are_private_and_the_database_holds_no_token(random_study_template):
    folder = random_study_template
    assert _mode(folder) & 0o077 == 0  # built private (mkdtemp), renamed into place
    assert _mode(folder / "links.txt") == 0o600
    assert _mode(folder / DB_NAME) == 0o600
    with TestClient(create_app(shutil.copytree(folder, folder.parent / "served"))) as client:
        served = folder.parent / "served"
        token = _tokens(served)[0]
        query = client.get(f"/s/{token}/next.json").json()
        assert (
            client.post(
                f"/s/{token}/answer.json", json={"query": query["query"], "choice": "left"}
            ).status_code
            == 200
        )
        for suffix in ("", "-wal", "-shm"):  # SQLite gives its files the database's mode
            path = Path(f"{served / DB_NAME}{suffix}")
            assert not path.exists() or _mode(path) == 0o600, suffix
    database = b"".join(p.read_bytes() for p in served.glob(f"{DB_NAME}*"))
    for token in _tokens(served):
        assert token.encode() not in database
    with StudyStore(served).connect() as db:
        stored = [row[0] for row in db.execute("SELECT token FROM participants ORDER BY id")]
    assert stored == [hash_token(t) for t in _tokens(served)]


def test_links_are_written_private_before_the_rename(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def replace(source, target):
        seen.append(_mode(Path(source)))
        real_replace(source, target)

    monkeypatch.setattr(spec_module.os, "replace", replace)
    old = os.umask(0o000)  # the most open umask: the file must still be private throughout
    try:
        write_private(tmp_path / "links.txt", "p01 http://x/s/secret\n")
    finally:
        os.umask(old)
    assert seen == [0o600] and _mode(tmp_path / "links.txt") == 0o600


def test_a_study_with_plain_tokens_and_an_open_database_is_fixed_when_served(random_study):
    db_path = random_study / DB_NAME
    with sqlite3.connect(db_path) as db:  # what a study created before hashing holds
        db.execute("UPDATE participants SET token = 'plain-old-token' WHERE id = 1")
    db_path.chmod(0o644)
    with TestClient(create_app(random_study)) as client:
        assert client.get("/s/plain-old-token/next.json").status_code == 200
        assert client.get(f"/s/{hash_token('plain-old-token')}/next.json").status_code == 404
    assert _mode(db_path) == 0o600
    with StudyStore(random_study).connect() as db:
        (stored,) = db.execute("SELECT token FROM participants WHERE id = 1").fetchone()
    assert stored == hash_token("plain-old-token")


# ----------------------------------------------------------------- 3. robot of another task
def _policy_copy(tmp_path: Path, name: str, **changes) -> Path:
    folder = Path(shutil.copytree(CHECKPOINTS / name, tmp_path / f"{name}_edited"))
    meta = json.loads((folder / "meta.json").read_text())
    meta.update(changes)
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize(
    ("flag", "changes", "message"),
    [
        (
            "policy",
            {"env_id": "robopref/BlockSort-v0"},
            "trained on robopref/BlockSort-v0, but --reward .* on robopref/PlatePlacement-v0",
        ),
        ("policy", {"kind": "oracle"}, "is a oracle policy"),
        (
            "btl_policy",
            {"env_id": "robopref/BlockSort-v0"},
            "--btl-policy .* trained on robopref/BlockSort-v0",
        ),
    ],
)
def test_create_refuses_a_robot_policy_of_another_task_or_kind(tmp_path, flag, changes, message):
    source = "policy_vpl" if flag == "policy" else "policy_btl"
    options = {
        "reward": str(CHECKPOINTS / "vpl.pt"),
        "policy": str(CHECKPOINTS / "policy_vpl"),
        "btl_policy": str(CHECKPOINTS / "policy_btl"),
        "btl_reward": str(CHECKPOINTS / "btl.pt"),
        flag: str(_policy_copy(tmp_path, source, **changes)),
    }
    with pytest.raises(ValueError, match=message):
        create_study(StudyCreateOptions(out=str(tmp_path / "s"), **options), progress=False)
    assert not (tmp_path / "s").exists()


def test_create_names_btl_reward_when_the_btl_policys_model_is_missing(tmp_path):
    moved = _policy_copy(tmp_path, "policy_btl")  # its ../btl.pt is not beside the copy
    options = StudyCreateOptions(
        out=str(tmp_path / "s"), reward=str(CHECKPOINTS / "vpl.pt"),
        policy=str(CHECKPOINTS / "policy_vpl"), btl_policy=str(moved),
    )  # fmt: skip
    with pytest.raises(FileNotFoundError, match="--btl-reward PATH"):
        create_study(options, progress=False)
    assert not (tmp_path / "s").exists()


# ----------------------------------------------------------------- 4. report outputs
def test_report_refuses_an_unwritable_out_and_a_silent_replace(random_study, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    code, err = _cli(capsys, "study", "report", "--study", str(random_study), "--out", str(afile))
    assert code == 2 and "is a file" in err and "Traceback" not in err
    if os.geteuid() != 0:  # root writes anywhere
        readonly = tmp_path / "readonly"
        readonly.mkdir()
        readonly.chmod(0o555)
        code, err = _cli(
            capsys, "study", "report", "--study", str(random_study), "--out", str(readonly)
        )
        assert code == 2 and "not writable" in err
    study_report_command(StudyReportOptions(study=str(random_study)))
    before = (random_study / "report.json").read_bytes()
    code, err = _cli(capsys, "study", "report", "--study", str(random_study))
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert (random_study / "report.json").read_bytes() == before
    study_report_command(StudyReportOptions(study=str(random_study), overwrite=True))


# ----------------------------------------------------------------- 5. races and ids
def test_parallel_clients_of_one_participant_get_no_server_error(random_study):
    token = _tokens(random_study)[0]
    statuses: Counter = Counter()
    lock = threading.Lock()
    app = create_app(random_study)
    chooser = app.state.study.chooser
    real_next_pair = chooser.next_pair

    def slow_next_pair(*args, **kwargs):  # an active study's choice takes a while: widen the window
        time.sleep(0.05)
        return real_next_pair(*args, **kwargs)

    chooser.next_pair = slow_next_pair
    with TestClient(app, raise_server_exceptions=False) as client:

        def tab(seed: int) -> None:
            for i in range(6):
                state = client.get(f"/s/{token}/next.json")
                with lock:
                    statuses["next", state.status_code] += 1
                if state.status_code != 200 or state.json()["done"]:
                    return
                choice = ("left", "right")[(seed + i) % 2]
                reply = client.post(
                    f"/s/{token}/answer.json",
                    json={"query": state.json()["query"], "choice": choice},
                )
                with lock:
                    statuses["answer", reply.status_code] += 1

        threads = [threading.Thread(target=tab, args=(n,)) for n in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert not any(status >= 500 for _, status in statuses), statuses
    assert set(statuses) <= {("next", 200), ("answer", 200), ("answer", 409)}, statuses
    rows = StudyStore(random_study).all_answers()
    assert [r["position"] for r in rows] == [0, 1, 2, 3]
    assert len({r["pair"] for r in rows}) == 4


def test_a_query_chosen_while_another_server_showed_one_is_chosen_again(random_study):
    """The choice is recorded only if the participant's queries did not change since it was
    made (two server processes on one folder); else it is made again."""
    app = create_app(random_study)
    study = app.state.study
    participant = study.participant(_tokens(random_study)[0])
    real_next_pair = study.chooser.next_pair
    calls = []

    def next_pair(participant_id, shown, *args, **kwargs):
        pair = real_next_pair(participant_id, shown, *args, **kwargs)
        if not calls:  # meanwhile, another process shows this very pair and it is answered
            other = study.store.show(participant_id, pair, False)
            study.store.answer(participant_id, other.id, "left", None)
        calls.append(pair)
        return pair

    study.chooser.next_pair = next_pair
    query = study.next_query(participant)
    assert len(calls) == 2 and query.position == 1 and query.pair != calls[0]
    assert StudyStore(random_study).show(participant.id, 0, False, position=0) == query


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": 1e30, "choice": "left"}',
        b'{"query": 1180591620717411303424, "choice": "left"}',
        b'{"query": Infinity, "choice": "left"}',
        b'{"query": NaN, "choice": "left"}',
        b'{"query": -3, "choice": "left"}',
        b'{"query": true, "choice": "left"}',
        b'{"query": 1, "choice": "left", "client_ms": 1e400}',
        b'{"query": 1, "choice": "left", "client_ms": ' + b"9" * 400 + b"}",
    ],
)
def test_out_of_range_query_ids_are_422_not_500(random_study, body):
    token = _tokens(random_study)[0]
    with TestClient(create_app(random_study), raise_server_exceptions=False) as client:
        client.get(f"/s/{token}/next.json")
        reply = client.post(f"/s/{token}/answer.json", content=body)
    assert reply.status_code == 422, reply.text


@pytest.mark.parametrize("query", [str(10**25), "1e30", "inf", "-1", ""])
def test_out_of_range_form_query_ids_are_422_not_500(random_study, query):
    token = _tokens(random_study)[0]
    with TestClient(create_app(random_study), raise_server_exceptions=False) as client:
        client.get(f"/s/{token}")
        reply = client.post(
            f"/s/{token}/answer", data={"query": query, "choice": "left"}, follow_redirects=False
        )
    assert reply.status_code == 422, reply.text


# ----------------------------------------------------------------- 6. damaged folders
def _edit_spec(folder: Path, change) -> None:
    path = folder / "study.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


DAMAGES = {
    "unknown key": (lambda f: _edit_spec(f, lambda d: d.update(extra_key=1)), "unknown key"),
    "missing key": (lambda f: _edit_spec(f, lambda d: d.pop("queries")), "lacks the key"),
    "queries abc": (
        lambda f: _edit_spec(f, lambda d: d.update(queries="abc")),
        "\"queries\" is 'abc', not a whole number",
    ),
    "too many queries": (
        lambda f: _edit_spec(f, lambda d: d.update(queries=999)),
        "more than the 12 candidate pairs",
    ),
    "corrupt json": (
        lambda f: (f / "study.json").write_text('{"format": "robopref.Study",\n'),
        "study.json is damaged: not valid JSON",
    ),
    "deleted database": (lambda f: (f / DB_NAME).unlink(), "has no study.sqlite"),
    "garbage database": (
        lambda f: (f / DB_NAME).write_bytes(b"not a database" * 100),
        "not a readable SQLite database",
    ),
    "missing pool": (lambda f: (f / "pool.npz").unlink(), "has no pool.npz"),
    "garbage pool": (lambda f: (f / "pool.npz").write_bytes(b"PK junk"), "pool.npz is damaged"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_study_folder_is_refused_by_every_command(
    random_study, tmp_path, capsys, monkeypatch, damage
):
    import uvicorn

    def no_server(*args, **kwargs):
        raise AssertionError("the server started on a damaged study")

    monkeypatch.setattr(uvicorn, "run", no_server)
    damage_fn, message = DAMAGES[damage]
    damage_fn(random_study)
    commands = [
        ("serve", "--study", str(random_study)),
        ("export", "--study", str(random_study), "--out", str(tmp_path / "a.npz")),
        ("report", "--study", str(random_study), "--out", str(tmp_path / "report")),
    ]
    for command in commands:
        code, err = _cli(capsys, "study", *command)
        assert code == 2, (command, err)
        assert message in err and "Traceback" not in err, (command, err)
    if damage == "deleted database":
        assert not (random_study / DB_NAME).exists()  # never created empty


def test_serve_refuses_an_unknown_log_level(random_study, capsys):
    code, err = _cli(capsys, "study", "serve", "--study", str(random_study), "--log-level", "loud")
    assert code == 2 and "'loud'" in err and "warning" in err and "debug" in err


# ----------------------------------------------------------------- 7. half-built folders
SMALL = {"participants": 1, "queries": 1, "episodes": 3, "pairs": 2, "segment": 3}


def test_an_interrupted_create_leaves_no_folder_and_can_run_again(tmp_path, monkeypatch):
    out = tmp_path / "killed"
    real_write = create_module.write_webm
    written = []

    def write_then_stop(*args, **kwargs):
        real_write(*args, **kwargs)
        written.append(args[1])
        raise KeyboardInterrupt  # Ctrl-C after the first clip

    monkeypatch.setattr(create_module, "write_webm", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        create_study(StudyCreateOptions(out=str(out), **SMALL), progress=False)
    assert written and not out.exists()
    assert list(tmp_path.iterdir()) == []  # the hidden building folder is gone too
    monkeypatch.setattr(create_module, "write_webm", real_write)
    # What kill -9 leaves: a marked building folder beside it; the next create removes it.
    leftover = tmp_path / ".killed.creating-abc123"
    (leftover / "clips").mkdir(parents=True)
    (leftover / BUILDING_MARK).touch()
    create_study(StudyCreateOptions(out=str(out), **SMALL), progress=False)
    assert (out / "study.json").is_file() and (out / DB_NAME).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed"]


def test_a_half_built_folder_is_named_with_the_fix_by_create_and_serve(tmp_path, capsys):
    out = tmp_path / "killed"
    (out / "clips").mkdir(parents=True)  # what a create killed before atomic creation left
    (out / "clips" / "seg_e0001_t0000.webm").write_bytes(b"\x1aE")
    code, err = _cli(capsys, "study", "create", "--out", str(out))
    assert code == 2 and "half-built" in err and f"rm -r {out}" in err
    code, err = _cli(capsys, "study", "serve", "--study", str(out))
    assert code == 2 and "half-built" in err and f"rm -r {out}" in err
    code, err = _cli(capsys, "study", "serve", "--study", str(tmp_path))  # unrelated folder
    assert code == 2 and "not a study folder" in err and "rm -r" not in err


# ----------------------------------------------------------------- 8. export's name
def test_export_refuses_an_out_that_is_not_npz(random_study, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"must end in \.npz"):
        study_export_command(
            StudyExportOptions(study=str(random_study), out=str(tmp_path / "answers.csv"))
        )
    assert not (tmp_path / "answers.csv").exists()
