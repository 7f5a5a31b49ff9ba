"""The study's HTML pages, one per step of :mod:`robopref.study.flow`.

Plain HTML with a little JavaScript (no build step): every page works with the keyboard
(the keys are written on it) and at a phone's width, and its forms submit without
JavaScript (a ranking then by a rank menu under each clip).
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template

from robopref.study.flow import Study
from robopref.study.questions import PROMPTS, RATING_LEVELS
from robopref.study.store import Participant, ShownQuery

TEMPLATES = Path(__file__).parent / "templates"
#: the buttons of a pair type's page, their labels and keys
CHOICE_LABELS = {
    "left": ("A (left)", "A"),
    "right": ("B (right)", "B"),
    "equal": ("About equal", "E"),
    "cant_tell": ("Can't tell", "C"),
}


def template(name: str) -> Template:
    """A page template of ``templates/``."""
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def _common(title: str) -> dict[str, str]:
    """What every page shares: its head (the title, the style sheet) and the clips' sync."""
    head = template("head.html").substitute(
        title=html.escape(title), css=(TEMPLATES / "base.css").read_text(encoding="utf-8")
    )
    return {"head": head, "sync": (TEMPLATES / "sync.js").read_text(encoding="utf-8")}


def _paragraphs(text: str) -> str:
    return "</p><p>".join(html.escape(part) for part in text.split("\n\n"))


def welcome_page(study: Study, token: str) -> str:
    """The title, the task, an example clip and the instructions."""
    spec = study.spec
    example = ""
    if spec.example_clip:
        url = html.escape(f"/s/{token}/clip/{spec.example_clip}")
        example = (
            f'<figure><video id="example" src="{url}" muted playsinline autoplay loop controls>'
            "</video><figcaption>An example clip: one robot doing the task</figcaption></figure>"
        )
    practice = f", after {spec.practice} practice questions that do not count" * bool(spec.practice)
    return template("welcome.html").substitute(
        _common(spec.title),
        title=html.escape(spec.title),
        description=_paragraphs(spec.description),
        instructions=_paragraphs(spec.instructions),
        example=example,
        total=spec.queries,
        practice_note=practice,
        token=html.escape(token),
    )


def consent_page(study: Study, token: str) -> str:
    """The consent text, "I agree" and "I do not agree"."""
    return template("consent.html").substitute(
        _common(f"Consent: {study.spec.title or 'robopref study'}"),
        title=html.escape(study.spec.title or "robopref study"),
        consent=f"<p>{_paragraphs(study.spec.consent)}</p>",
        token=html.escape(token),
    )


def message_page(page: str, heading: str, message: str) -> str:
    """A page that only says something (declined, thanks, preparing)."""
    return template("message.html").substitute(
        _common(heading), page=page, heading=html.escape(heading), message=message
    )


def query_page(study: Study, token: str, query: ShownQuery) -> str:
    """The page of a query of any type."""
    kind = study.question(query)
    urls = [html.escape(url) for url in study.shown_items(token, query)]
    if query.practice:
        position, total = query.position + 1, study.spec.practice
        heading = f"Practice {position} of {total}"
        banner = (
            '<p class="practice" id="practice">Practice question: it does not count. '
            "Try the buttons and keys.</p>"
        )
    else:
        position, total = query.position + 1 - study.spec.practice, study.spec.queries
        heading = f"Query {position} of {total}"
        banner = ""
    fields = dict(
        _common(heading),
        token=html.escape(token),
        query=query.id,
        position=position,
        total=total,
        heading=heading,
        banner=banner,
        prompt=PROMPTS[kind.kind],
        kind=kind.kind,
    )
    if kind.kind == "ranking":
        figures = "\n".join(_ranked_figure(i, url, kind.items) for i, url in enumerate(urls))
        return template("ranking.html").substitute(fields, figures=figures)
    if kind.kind == "rating":
        return template("rating.html").substitute(
            fields, clip=urls[0], levels=RATING_LEVELS, middle=(RATING_LEVELS + 1) // 2
        )
    if kind.kind == "end-state":
        media = "\n".join(
            f'  <figure><img class="picture" id="{side}" src="{url}" alt="the table robot '
            f'{name} left"><figcaption>{name}</figcaption></figure>'
            for side, url, name in zip(("left", "right"), urls, "AB", strict=True)
        )
    else:
        media = "\n".join(
            f'  <figure><video id="{side}" src="{url}" muted playsinline preload="auto"></video>'
            f"<figcaption>{name}</figcaption></figure>"
            for side, url, name in zip(("left", "right"), urls, "AB", strict=True)
        )
    choices = kind.choices()
    buttons = "\n".join(
        f'<button type="submit" name="choice" value="{choice}" id="choice-{choice}">'
        f"{html.escape(CHOICE_LABELS[choice][0])} <kbd>{CHOICE_LABELS[choice][1]}</kbd></button>"
        for choice in choices
    )
    keys = "Keys: A or &larr; for A, B or &rarr; for B" + (
        ", E for about equal" if "equal" in choices else ""
    )
    return template("query.html").substitute(
        fields, media=media, buttons=buttons, keys=keys + ", C for can't tell."
    )


def _ranked_figure(index: int, url: str, count: int) -> str:
    options = "".join(f'<option value="{r}">{r}</option>' for r in range(1, count + 1))
    return (
        f'    <figure id="item-{index}" tabindex="0"><video src="{url}" muted playsinline '
        f'preload="auto"></video><figcaption>Clip {index + 1} <kbd>{index + 1}</kbd> '
        f'<span class="rank"></span><select name="rank_{index}" aria-label="rank of clip '
        f'{index + 1}"><option value="">rank</option>{options}</select></figcaption></figure>'
    )


def final_page(study: Study, token: str, rating: bool) -> str:
    """The blind end: the two robots, "which would you rather have?" or their ratings."""
    if not rating:
        form = (
            f'<form id="final" method="post" action="/s/{html.escape(token)}/final">'
            "<p><strong>Which would you rather have at your table?</strong></p>"
            '<div class="buttons">'
            '<button type="submit" name="choice" value="left" id="final-left">Robot 1 '
            "<kbd>1</kbd></button>"
            '<button type="submit" name="choice" value="right" id="final-right">Robot 2 '
            "<kbd>2</kbd></button>"
            '<button type="submit" name="choice" value="equal" id="final-equal">About equal '
            "<kbd>E</kbd></button></div></form>"
        )
        heading = "Which robot would you rather have?"
    else:
        sliders = "".join(
            f'<div class="slider"><label for="rating_{side}">Robot {n}: 1</label>'
            f'<input type="range" id="rating_{side}" name="rating_{side}" min="1" '
            f'max="{RATING_LEVELS}" value="{(RATING_LEVELS + 1) // 2}">'
            f'<label for="rating_{side}">{RATING_LEVELS}</label><output class="value" '
            f'id="rating_{side}-value">{(RATING_LEVELS + 1) // 2}</output></div>'
            for n, side in ((1, "left"), (2, "right"))
        )
        form = (
            f'<form id="final" method="post" action="/s/{html.escape(token)}/final-rating">'
            "<p><strong>How well does each robot do the task the way you want it done?</strong>"
            f" (1: not at all, {RATING_LEVELS}: exactly)</p>{sliders}"
            '<div class="buttons"><button type="submit" id="final-rate">Submit ratings '
            "<kbd>Enter</kbd></button></div></form>"
        )
        heading = "Rate the two robots"
    return template("final.html").substitute(
        _common(heading),
        token=html.escape(token),
        heading=heading,
        page="final-rating" if rating else "final",
        form=form,
    )


def labelled_robot_page(study: Study, token: str, participant: Participant) -> str:
    """The end of a study with one robot: the participant's, labelled."""
    robot = study.robot_state(participant, token)
    clips = "".join(
        f'<figure><video id="robot-{kind}" src="{html.escape(url)}" autoplay muted loop '
        "playsinline controls></video><figcaption>Personalized to your answers"
        "</figcaption></figure>"
        for kind, url in robot["clips"].items()
    )
    return message_page(
        "thanks",
        "Thank you",
        f'All your answers are recorded. Your robot:</p><div class="clips">{clips}</div><p>',
    )


def robot_wait_page(study: Study, token: str, participant: Participant) -> str:
    """ "Preparing your robot" (polls until ready), or that it failed."""
    state = study.robot_state(participant)
    if state["status"] == "failed":
        return message_page(
            "robot",
            "Thank you",
            "All your answers are recorded. Your robot could not be rendered; the study's "
            "organiser has the log.",
        )
    return template("done.html").substitute(
        _common("Thank you: preparing your robot"),
        token=html.escape(token),
        total=study.spec.queries,
        status=state["status"],
    )
