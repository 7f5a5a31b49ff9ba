"""The study's web app (FastAPI): query pages, answers, clips and "your robot".

Why FastAPI on uvicorn: a well-kept, typed framework with a test client, that serves plain
HTML with a little JavaScript (no build step, no front-end toolchain), and whose sync
routes run in a thread pool, so SQLite's one-transaction-per-answer model serves many
participants at once. Every route takes the participant's private token; nothing is shown
or written for an unknown one.

Routes (``{token}``: a participant's link)::

    GET  /s/{token}               the next query (two clips, A / B / equal / can't tell)
                                  or, after the last answer, "your robot"
    POST /s/{token}/answer        the form's answer -> 303 back to the page
    GET  /s/{token}/next.json     the open query as JSON (created if none is open)
    POST /s/{token}/answer.json   {"query", "choice", "client_ms"} -> the stored answer
    GET  /s/{token}/clip/{name}   a candidate clip (plain names under clips/ only)
    GET  /s/{token}/robot.json    the state of the participant's robot clips
    GET  /s/{token}/robot/{kind}  the participant's own robot clip (vpl or btl)

Refusals (nothing written): unknown token 404, another participant's query 403, an
answered query 409 (a replay), a query that does not exist 404, a bad choice or a query id
that is not an integer of SQLite's range 422, a clip name that is not a plain name or
resolves outside the study 403. The answer routes check the token before reading the body,
and read at most :data:`MAX_BODY` bytes of it (413 beyond: nothing more is buffered).

A participant's queries are chosen and recorded one request at a time (a lock per
participant, and a position check inside the database transaction), so parallel requests
of one participant (tabs, double clicks) all get the same open query.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse

from robopref.reward import load_reward_model
from robopref.reward.nets import resolve_device
from robopref.study.choose import QueryChooser
from robopref.study.robot import ROBOT_KINDS, RobotRenderer, robot_clip_name, robot_json
from robopref.study.spec import CLIPS_DIR, ROBOT_DIR, check_study_folder, clip_path
from robopref.study.store import (
    CHOICES,
    Participant,
    ShownQuery,
    StudyRefusedError,
    StudyStore,
    check_query_id,
)

LOG = logging.getLogger("robopref.study")
TEMPLATES = Path(__file__).parent / "templates"
CHOICE_LABELS = {
    "left": "A (left)",
    "right": "B (right)",
    "equal": "Equally good",
    "cant_tell": "Can't tell",
}
#: the largest answer body read (an answer is about 60 bytes)
MAX_BODY = 64 * 1024
#: how often a query is chosen again when another server changed the participant's queries
CHOOSE_TRIES = 5


def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text())


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
        self.chooser = QueryChooser(self.spec, self.pool, model)
        self.robots = RobotRenderer(self.folder, self.spec, model, device)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="robot")
        self._rendering: set[int] = set()
        self._lock = threading.Lock()
        self._choosing: dict[int, threading.Lock] = {}

    # ------------------------------------------------------------------ queries
    def participant(self, token: str) -> Participant:
        """The participant of ``token`` (404 if unknown)."""
        return self.store.participant(token)

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
                if len(shown) >= self.spec.queries:
                    return None
                answered = self.store.answered(participant.id)
                pair = self.chooser.next_pair(participant.id, [q.pair for q in shown], answered)
                swapped = self.chooser.swapped(participant.id, len(shown))
                query = self.store.show(participant.id, pair, swapped, position=len(shown))
                if query is not None:
                    return query
        raise StudyRefusedError(503, "the server is busy with your other requests: reload")

    def clips(self, query: ShownQuery) -> tuple[str, str]:
        """The (left, right) clip names of a shown query."""
        a, b = self.pool.clip_a[query.pair], self.pool.clip_b[query.pair]
        return (b, a) if query.swapped else (a, b)

    def answer(
        self, participant: Participant, query: int, choice: str, client_ms: float | None
    ) -> ShownQuery:
        """Store one answer (refusals: see the module docstring); the last one starts the
        participant's robot."""
        shown = self.store.answer(participant.id, query, choice, client_ms)
        if shown.position + 1 >= self.spec.queries:
            self.start_robot(participant)
        return shown

    def query_json(self, token: str, query: ShownQuery | None) -> dict[str, Any]:
        """The open query as the JSON routes give it."""
        if query is None:
            return {"done": True, "total": self.spec.queries}
        left, right = self.clips(query)
        return {
            "done": False,
            "query": query.id,
            "position": query.position + 1,
            "total": self.spec.queries,
            "left": f"/s/{token}/clip/{left}",
            "right": f"/s/{token}/clip/{right}",
        }

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
            z = self.robots.latent(self.pool, self.store.answered(participant.id))
            result = self.robots.render(participant.name, participant.id, z)
            self.store.set_robot(participant.id, "ready", z=robot_json(result))
        except Exception as error:  # shown on the page and kept in the database
            LOG.exception("robot clips of %s failed", participant.name)
            self.store.set_robot(participant.id, "failed", error=repr(error))
        finally:
            with self._lock:
                self._rendering.discard(participant.id)

    def robot_state(self, token: str, participant: Participant) -> dict[str, Any]:
        """``{"status", "clips"}`` of the participant's robot (``none`` without a policy)."""
        if not self.robots.enabled:
            return {"status": "none", "clips": {}}
        state = self.store.robot(participant.id)
        if state is None or (state[0] == "rendering" and participant.id not in self._rendering):
            # Done, but never started or killed mid-render: (re)start it now.
            if len(self.store.answered(participant.id)) >= self.spec.queries:
                self.start_robot(participant)
            state = self.store.robot(participant.id)
        status = state[0] if state else "waiting"
        clips = {}
        if status == "ready":
            clips = {kind: f"/s/{token}/robot/{kind}" for kind in self.robots.kinds()}
        return {"status": status, "clips": clips, "error": state[2] if state else None}

    def close(self) -> None:
        """Let a running render finish and drop the queued ones (their participants' next
        visit renders them: their state stays ``rendering``), then stop the worker."""
        self._worker.shutdown(wait=True, cancel_futures=True)


def _refusal_response(error: StudyRefusedError, json_route: bool) -> Any:
    if json_route:
        return JSONResponse({"detail": str(error)}, status_code=error.status)
    body = _template("error.html").substitute(status=error.status, message=html.escape(str(error)))
    return HTMLResponse(body, status_code=error.status)


def _query_page(study: Study, token: str, query: ShownQuery) -> str:
    left, right = study.clips(query)
    buttons = "\n".join(
        f'<button type="submit" name="choice" value="{choice}" id="choice-{choice}">'
        f"{html.escape(label)} <kbd>{key}</kbd></button>"
        for (choice, label), key in zip(CHOICE_LABELS.items(), "ABEC", strict=True)
    )
    return _template("query.html").substitute(
        token=html.escape(token),
        query=query.id,
        position=query.position + 1,
        total=study.spec.queries,
        left=html.escape(f"/s/{token}/clip/{left}"),
        right=html.escape(f"/s/{token}/clip/{right}"),
        buttons=buttons,
    )


def _done_page(study: Study, token: str, participant: Participant) -> str:
    robot = study.robot_state(token, participant)
    if robot["status"] == "none":
        section = "<p>This study shows no robot. You may close the page.</p>"
    elif robot["status"] == "ready":
        titles = {
            "vpl": "Personalized to your answers (VPL)",
            "btl": "Standard: one reward for everybody (BTL)",
        }
        section = (
            '<div class="clips">'
            + "".join(
                f'<figure><video id="robot-{kind}" src="{html.escape(url)}" autoplay muted loop '
                f"playsinline controls></video><figcaption>{titles[kind]}</figcaption></figure>"
                for kind, url in robot["clips"].items()
            )
            + "</div>"
        )
    elif robot["status"] == "failed":
        section = "<p>Your robot could not be rendered; the study's organiser has the log.</p>"
    else:
        section = (
            '<p id="preparing">Preparing your robot&hellip;</p>'
            '<noscript><meta http-equiv="refresh" content="3"></noscript>'
        )
    return _template("done.html").substitute(
        token=html.escape(token),
        total=study.spec.queries,
        section=section,
        status=robot["status"],
    )


def create_app(folder: str | Path, device: str = "cpu") -> FastAPI:
    """The app serving the study in ``folder``, its models on ``device``."""
    study = Study(folder, device)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        study.close()

    app = FastAPI(
        title="robopref study", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.study = study

    @app.exception_handler(StudyRefusedError)
    def refused(request: Request, error: StudyRefusedError) -> Any:
        json_route = request.url.path.endswith(".json")
        return _refusal_response(error, json_route)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><title>robopref study</title><p>Open the private link you were "
            "given.</p>",
            status_code=404,
        )

    @app.get("/s/{token}", response_class=HTMLResponse)
    def page(token: str) -> HTMLResponse:
        participant = study.participant(token)
        query = study.next_query(participant)
        if query is None:
            return HTMLResponse(_done_page(study, token, participant))
        return HTMLResponse(_query_page(study, token, query))

    @app.post("/s/{token}/answer")
    async def answer_form(token: str, request: Request) -> RedirectResponse:
        participant = await _in_thread(study.participant, token)  # before reading the body
        form = await _form(request)
        query = _query_field(form.get("query"))
        choice = form.get("choice")
        if choice is None:
            raise StudyRefusedError(422, f"the form has no choice: one of {list(CHOICES)}")
        client_ms = _milliseconds(form.get("client_ms", ""))
        await _in_thread(study.answer, participant, query, choice, client_ms)
        return RedirectResponse(f"/s/{token}", status_code=303)

    @app.get("/s/{token}/next.json")
    def next_json(token: str) -> dict[str, Any]:
        participant = study.participant(token)
        return study.query_json(token, study.next_query(participant))

    @app.post("/s/{token}/answer.json")
    async def answer_json(token: str, request: Request) -> Any:
        await _in_thread(study.participant, token)  # an unknown token: 404, body unread
        raw = await _capped_body(request)
        try:
            body = json.loads(raw)
            query, choice = body["query"], str(body["choice"])
            client_ms = body.get("client_ms")
            client_ms = None if client_ms is None else float(client_ms)
        except (ValueError, KeyError, TypeError, OverflowError) as error:
            raise StudyRefusedError(
                422,
                f'the body must be JSON {{"query": id, "choice": one of {list(CHOICES)}, '
                f'"client_ms": number}}: {error}',
            ) from error
        query = _query_field(query)
        return await _in_thread(_answer_and_next, study, token, query, choice, client_ms)

    @app.get("/s/{token}/clip/{name:path}")
    def clip(token: str, name: str) -> FileResponse:
        study.participant(token)
        return FileResponse(clip_path(study.folder, CLIPS_DIR, name), media_type="video/webm")

    @app.get("/s/{token}/robot.json")
    def robot_status(token: str) -> dict[str, Any]:
        participant = study.participant(token)
        return study.robot_state(token, participant)

    @app.get("/s/{token}/robot/{kind}")
    def robot_clip(token: str, kind: str) -> FileResponse:
        participant = study.participant(token)
        if kind not in ROBOT_KINDS or kind not in study.robots.kinds():
            raise StudyRefusedError(
                404, f"no robot clip {kind!r}: this study has {study.robots.kinds()}"
            )
        state = study.store.robot(participant.id)
        if state is None or state[0] != "ready":
            raise StudyRefusedError(404, "your robot is not rendered yet: answer every query first")
        name = robot_clip_name(participant.name, kind)
        return FileResponse(clip_path(study.folder, ROBOT_DIR, name), media_type="video/webm")

    return app


async def _capped_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request's body, read chunk by chunk and refused (413) past ``limit`` bytes: an
    oversized body is never buffered."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise StudyRefusedError(
            413, f"the body is {declared} bytes: an answer is at most {limit} bytes"
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise StudyRefusedError(413, f"the body exceeds {limit} bytes: an answer is smaller")
        chunks.append(chunk)
    return b"".join(chunks)


async def _form(request: Request) -> dict[str, str]:
    """The answer form's fields (urlencoded, as the page posts it, or multipart), read
    within :data:`MAX_BODY`."""
    raw = await _capped_body(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        from starlette.formparsers import MultiPartException, MultiPartParser

        async def replay() -> AsyncIterator[bytes]:
            yield raw

        try:
            parsed = await MultiPartParser(request.headers, replay()).parse()
        except MultiPartException as error:
            raise StudyRefusedError(422, f"the form cannot be read: {error}") from error
        return {key: value for key, value in parsed.items() if isinstance(value, str)}
    try:
        fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as error:
        raise StudyRefusedError(422, f"the form is not UTF-8 text: {error}") from error
    return {key: values[0] for key, values in fields.items()}


def _query_field(value: Any) -> int:
    """A query id from a form field or JSON value (text, integer or integral number);
    anything else, or an id outside SQLite's range, is refused (422)."""
    if value is None:
        raise StudyRefusedError(422, "no query id: send the id next.json gave")
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 20:
            raise StudyRefusedError(
                422, f"query {value[:40]!r} is not a query id: send the id next.json gave"
            )
        value = int(text)
    return check_query_id(value)


def _milliseconds(text: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except (ValueError, OverflowError) as error:
        raise StudyRefusedError(
            422, f"client_ms={text!r} is not a number of milliseconds"
        ) from error


def _answer_and_next(
    study: Study, token: str, query: int, choice: str, client_ms: float | None
) -> dict[str, Any]:
    participant = study.participant(token)
    shown = study.answer(participant, query, choice, client_ms)
    return {"stored": shown.id, "next": study.query_json(token, study.next_query(participant))}


async def _in_thread(function: Any, *args: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, *args)
