"""The study's web app (FastAPI): the pages of :mod:`robopref.study.flow`, answers, clips.

Why FastAPI on uvicorn: a well-kept, typed framework with a test client, that serves plain
HTML with a little JavaScript (no build step, no front-end toolchain), and whose sync
routes run in a thread pool, so SQLite's one-transaction-per-answer model serves many
participants at once. Every route takes the participant's private token; nothing is shown
or written for an unknown one.

Routes (``{token}``: a participant's link)::

    GET  /s/{token}                  the participant's current page (welcome, consent, a
                                     query of any type, the robots, thanks)
    POST /s/{token}/step             the form's step (welcome, consent, declined) -> 303
    POST /s/{token}/answer           the form's answer -> 303 back to the page
    POST /s/{token}/final            the blind final choice (left, right, equal) -> 303
    POST /s/{token}/final-rating     the robots' ratings (rating_left, rating_right) -> 303
    GET  /s/{token}/next.json        the current page as JSON (a query: its id, type, items)
    POST /s/{token}/step.json        {"step"} -> the next page
    POST /s/{token}/answer.json      {"query", "choice", "order" | "rating", "client_ms"}
                                     -> the stored answer and the next page
    POST /s/{token}/final.json       {"choice"} or {"rating_left", "rating_right"}
    GET  /s/{token}/clip/{name}      a candidate clip or end-state picture (plain names)
    GET  /s/{token}/robot.json       the state of the participant's robot clips
    GET  /s/{token}/robot/{kind}     the participant's robot clip, in a study without the
                                     blind end (a BTL policy makes the end blind)
    GET  /s/{token}/final/{side}     the robot shown on that side of the blind end

Refusals (nothing written): unknown token 404, another participant's query 403, an
answered query or a step out of order 409 (a replay), a query that does not exist 404, a
bad choice, order or rating, or a query id that is not an integer of SQLite's range 422, a
clip name that is not a plain name or resolves outside the study 403. The answer routes
check the token before reading the body, and read at most :data:`MAX_BODY` bytes of it
(413 beyond: nothing more is buffered).

A participant's queries are chosen and recorded one request at a time (a lock per
participant, and a position check inside the database transaction), so parallel requests
of one participant (tabs, double clicks) all get the same open query.
"""

from __future__ import annotations

import html
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse

from robopref.study import pages
from robopref.study.flow import Study
from robopref.study.questions import RATING_LEVELS
from robopref.study.robot import ROBOT_KINDS, robot_clip_name
from robopref.study.spec import CLIPS_DIR, ROBOT_DIR, clip_path
from robopref.study.store import CHOICES, StudyRefusedError, check_query_id

__all__ = ["Study", "create_app"]
#: the largest answer body read (an answer is about 60 bytes)
MAX_BODY = 64 * 1024


def _refusal_response(error: StudyRefusedError, json_route: bool) -> Any:
    if json_route:
        return JSONResponse({"detail": str(error)}, status_code=error.status)
    body = pages.template("error.html").substitute(
        status=error.status, message=html.escape(str(error))
    )
    return HTMLResponse(body, status_code=error.status)


def _page(study: Study, token: str) -> str:
    """The HTML of the participant's current page."""
    participant = study.participant(token)
    page, query = study.page(participant)
    if page == "welcome":
        return pages.welcome_page(study, token)
    if page == "consent":
        return pages.consent_page(study, token)
    if page == "declined":
        return pages.message_page(
            "declined", "Thank you", "You did not agree, so nothing of yours is recorded. "
            "You may close the page."
        )  # fmt: skip
    if page == "query":
        assert query is not None
        return pages.query_page(study, token, query)
    if page == "robot":
        return pages.robot_wait_page(study, token, participant)
    if page in ("final", "final-rating"):
        study.show_final(participant)
        return pages.final_page(study, token, rating=page == "final-rating")
    if study.robots.enabled and not study.blind:
        return pages.labelled_robot_page(study, token, participant)
    return pages.message_page(
        "thanks", "Thank you", "All your answers are recorded. You may close the page."
    )


def _given(body: dict[str, Any]) -> object:
    """A ranking's order or a rating from an answer's fields (form or JSON)."""
    if body.get("order") not in (None, ""):
        order = body["order"]
        if isinstance(order, str):
            parts = [part.strip() for part in order.split(",")]
            if not all(part.isascii() and part.isdigit() and len(part) < 4 for part in parts):
                raise StudyRefusedError(422, f"order {order[:40]!r}: shown positions like 2,0,1")
            return [int(part) for part in parts]
        return order
    ranks = {key: value for key, value in body.items() if key.startswith("rank_")}
    if ranks:  # the form without JavaScript: a rank per shown position
        try:
            ranked = sorted((int(value), int(key[5:])) for key, value in ranks.items())
        except ValueError as error:
            raise StudyRefusedError(422, "give every clip a rank (1 = best)") from error
        return [position for _, position in ranked]
    return body.get("rating")  # checked, as text or a number, by the store


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
        return HTMLResponse(_page(study, token))

    @app.post("/s/{token}/step")
    async def step_form(token: str, request: Request) -> RedirectResponse:
        participant = await _in_thread(study.participant, token)
        form = await _form(request)
        await _in_thread(study.take_step, participant, str(form.get("step", "")))
        return RedirectResponse(f"/s/{token}", status_code=303)

    @app.post("/s/{token}/step.json")
    async def step_json(token: str, request: Request) -> Any:
        participant = await _in_thread(study.participant, token)
        body = await _json_body(request, '{"step": "welcome" | "consent" | "declined"}')
        await _in_thread(study.take_step, participant, str(body.get("step", "")))
        return await _in_thread(study.page_json, token, participant)

    @app.post("/s/{token}/answer")
    async def answer_form(token: str, request: Request) -> RedirectResponse:
        participant = await _in_thread(study.participant, token)  # before reading the body
        form = await _form(request)
        query = _query_field(form.get("query"))
        choice = form.get("choice")
        if choice is None:
            raise StudyRefusedError(422, f"the form has no choice: one of {list(CHOICES)}")
        client_ms = _milliseconds(form.get("client_ms", ""))
        given = _given(form) if choice != "cant_tell" else None
        await _in_thread(study.answer, participant, query, choice, client_ms, given)
        return RedirectResponse(f"/s/{token}", status_code=303)

    @app.get("/s/{token}/next.json")
    def next_json(token: str) -> dict[str, Any]:
        participant = study.participant(token)
        return study.page_json(token, participant)

    @app.post("/s/{token}/answer.json")
    async def answer_json(token: str, request: Request) -> Any:
        await _in_thread(study.participant, token)  # an unknown token: 404, body unread
        shape = (
            f'{{"query": id, "choice": one of {list(CHOICES)} or ranked / rated, "order": '
            f'[shown positions, best first], "rating": 1-{RATING_LEVELS}, "client_ms": number}}'
        )
        body = await _json_body(request, shape)
        try:
            query, choice = body["query"], str(body["choice"])
            client_ms = body.get("client_ms")
            client_ms = None if client_ms is None else float(client_ms)
        except (ValueError, KeyError, TypeError, OverflowError) as error:
            raise StudyRefusedError(422, f"the body must be JSON {shape}: {error}") from error
        query = _query_field(query)
        given = _given(body)
        return await _in_thread(_answer_and_next, study, token, query, choice, client_ms, given)

    @app.post("/s/{token}/final")
    async def final_form(token: str, request: Request) -> RedirectResponse:
        participant = await _in_thread(study.participant, token)
        form = await _form(request)
        await _in_thread(study.choose_final, participant, str(form.get("choice", "")))
        return RedirectResponse(f"/s/{token}", status_code=303)

    @app.post("/s/{token}/final-rating")
    async def final_rating_form(token: str, request: Request) -> RedirectResponse:
        participant = await _in_thread(study.participant, token)
        form = await _form(request)
        await _in_thread(
            study.rate_final, participant, form.get("rating_left"), form.get("rating_right")
        )
        return RedirectResponse(f"/s/{token}", status_code=303)

    @app.post("/s/{token}/final.json")
    async def final_json(token: str, request: Request) -> Any:
        participant = await _in_thread(study.participant, token)
        body = await _json_body(request, '{"choice": left|right|equal} or {"rating_left", ...}')
        if "choice" in body:
            await _in_thread(study.choose_final, participant, str(body["choice"]))
        else:
            await _in_thread(
                study.rate_final, participant, body.get("rating_left"), body.get("rating_right")
            )
        return await _in_thread(study.page_json, token, participant)

    @app.get("/s/{token}/clip/{name:path}")
    def clip(token: str, name: str) -> FileResponse:
        study.participant(token)
        media = "image/png" if name.endswith(".png") else "video/webm"
        return FileResponse(clip_path(study.folder, CLIPS_DIR, name), media_type=media)

    @app.get("/s/{token}/robot.json")
    def robot_status(token: str) -> dict[str, Any]:
        participant = study.participant(token)
        return study.robot_state(participant, token)

    @app.get("/s/{token}/robot/{kind}")
    def robot_clip(token: str, kind: str) -> FileResponse:
        participant = study.participant(token)
        if study.blind or kind not in ROBOT_KINDS or kind not in study.robots.kinds():
            raise StudyRefusedError(
                404, f"no robot clip {kind!r}: the robots are shown at the end of the study"
            )
        return _robot_file(study, participant, kind)

    @app.get("/s/{token}/final/{side}")
    def final_clip(token: str, side: str) -> FileResponse:
        participant = study.participant(token)
        if not study.blind:
            raise StudyRefusedError(404, "this study has no blind final choice")
        return _robot_file(study, participant, study.final_kind(participant, side))

    return app


def _robot_file(study: Study, participant: Any, kind: str) -> FileResponse:
    state = study.store.robot(participant.id)
    if state is None or state[0] != "ready":
        raise StudyRefusedError(404, "your robot is not rendered yet: answer every query first")
    name = robot_clip_name(participant.name, kind)
    return FileResponse(clip_path(study.folder, ROBOT_DIR, name), media_type="video/webm")


async def _json_body(request: Request, shape: str) -> dict[str, Any]:
    """The request's JSON object body, read within :data:`MAX_BODY`; else 422."""
    raw = await _capped_body(request)
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise StudyRefusedError(422, f"the body must be JSON {shape}: {error}") from error
    if not isinstance(body, dict):
        raise StudyRefusedError(422, f"the body must be a JSON object {shape}")
    return body


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
    # the last value: a ranking form's "can't tell" button follows its hidden "ranked"
    return {key: values[-1] for key, values in fields.items()}


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
    study: Study, token: str, query: int, choice: str, client_ms: float | None, given: object
) -> dict[str, Any]:
    participant = study.participant(token)
    shown = study.answer(participant, query, choice, client_ms, given)
    return {"stored": shown.id, "next": study.page_json(token, participant)}


async def _in_thread(function: Any, *args: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, *args)
