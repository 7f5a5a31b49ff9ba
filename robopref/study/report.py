"""``robopref study report``: what people judged of their robots, who answered what, how
much people agree, position bias, and what each question type costs a person.

* **The end**: the blind choice between the personalized robot and BTL's (shown in a
  random order, unnamed): the win rate of the personalized robot (a win 1, "about equal"
  0.5, a loss 0, averaged over the participants who chose) with a 95% bootstrap interval,
  and each robot's mean 1-7 rating with its interval.
* **Answers per person**, by choice (A, B, equal, can't tell; a ranking or rating given),
  and their response times (the server's, page served to answer stored; the median per
  person). Practice answers are left out of everything.
* **Seconds per answer, per question type**: the median of the page's own clock (clips
  playing to the click; the server's time where the page sent none). ``costs`` gives them
  in the units of :data:`robopref.users.question_types.ANSWER_SECONDS` (a ranking's per
  clip shown), for ``robopref evaluate --per-second --costs report.json``; ``about-equal``
  and ``end-state`` are both weak pairs there, costed at the mean of their medians.
* **Agreement on shared queries**: for every pool pair that two or more people answered
  with a preference, the share of pairs of people whose answers agree (both A, both B, or
  both equal). It is low when people disagree (what VPL is for) or answer noisily.
* **Position bias**: among A-or-B answers, the share that picked the clip on the left, with
  a 95% Wilson interval; 0.5 is no bias (the order is a fair coin per query, so a left share
  away from 0.5 is the people's, as the RLAIF paper measures it for AI labellers).

Writes ``report.json`` and ``report.png`` into the study folder unless ``--out`` says where;
a report already there is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robopref.files import atomic_path, check_output, save_figure_atomic
from robopref.study.spec import check_study_folder
from robopref.study.store import CHOICES, StudyStore


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial share (``(nan, nan)`` without trials)."""
    if trials == 0:
        return math.nan, math.nan
    share = successes / trials
    centre = share + z * z / (2 * trials)
    spread = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    scale = 1 + z * z / trials
    return (centre - spread) / scale, (centre + spread) / scale


#: bootstrap resamples of the report's intervals (seeded: a report is reproducible)
BOOTSTRAP = 4000


def bootstrap_interval(values: list[float], seed: int = 0) -> tuple[float, float]:
    """The 95% percentile bootstrap interval of the mean of ``values`` (``(nan, nan)``
    without any)."""
    if not values:
        return math.nan, math.nan
    data = np.asarray(values, np.float64)
    draws = np.random.default_rng(seed).integers(0, len(data), (BOOTSTRAP, len(data)))
    means = data[draws].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def final_figures(finals: list[dict[str, Any]]) -> dict[str, Any]:
    """The win rate of the personalized robot over BTL's in the blind final choice, and
    each robot's ratings (module docstring)."""
    scores, ratings = [], {"vpl": [], "btl": []}
    for row in finals:
        if row["choice"] is None:
            continue
        right = "btl" if row["left"] == "vpl" else "vpl"
        chosen = {"left": row["left"], "right": right}.get(row["choice"])
        scores.append(0.5 if chosen is None else float(chosen == "vpl"))
        if row["rated_at"] is not None:
            ratings[row["left"]].append(float(row["rating_left"]))
            ratings[right].append(float(row["rating_right"]))
    return {
        "chose": len(scores),
        "wins": sum(s == 1.0 for s in scores),
        "ties": sum(s == 0.5 for s in scores),
        "losses": sum(s == 0.0 for s in scores),
        "win_rate": float(np.mean(scores)) if scores else None,
        "win_rate_ci95": list(bootstrap_interval(scores)),
        "ratings": {
            kind: {
                "mean": float(np.mean(values)) if values else None,
                "ci95": list(bootstrap_interval(values, seed=1)),
                "n": len(values),
            }
            for kind, values in ratings.items()
        },
    }


def answer_seconds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median seconds per answer by question type, and as answer costs (module docstring)."""
    from robopref.study.questions import parse_question

    by_type: dict[str, list[float]] = defaultdict(list)
    items_of: dict[str, int] = {}
    for row in rows:
        ms = row["client_ms"] if row["client_ms"] is not None else row["response_ms"]
        name = str(row["kind"]) + (f":{len(row['items'])}" if row["kind"] == "ranking" else "")
        by_type[name].append(float(ms) / 1000)
        items_of[name] = max(1, len(row["items"]))
    medians = {name: float(np.median(values)) for name, values in by_type.items()}
    costs: dict[str, list[float]] = defaultdict(list)
    for name, median in medians.items():
        model = parse_question(name).answer_model()
        per_item = model.kind in ("ranking", "best-of", "rating")
        costs[model.kind].append(median / items_of[name] if per_item else median)
    return {
        "median_s": {name: round(v, 2) for name, v in medians.items()},
        "answers": {name: len(v) for name, v in by_type.items()},
        "costs": {kind: round(float(np.mean(v)), 2) for kind, v in costs.items()},
    }


def study_report(folder: str | Path) -> dict[str, Any]:
    """The report's figures (module docstring) from the study's database."""
    spec, _ = check_study_folder(folder)
    store = StudyStore(folder)
    rows = store.all_answers()
    people: dict[str, dict[str, Any]] = {}
    for participant in store.participants():
        mine = [r for r in rows if r["participant"] == participant.id]
        times = [float(r["response_ms"]) for r in mine]
        people[participant.name] = {
            "answers": len(mine),
            "of": spec.queries,
            **{choice: sum(r["choice"] == choice for r in mine) for choice in CHOICES},
            "ranked_or_rated": sum(r["choice"] in ("ranked", "rated") for r in mine),
            "median_response_s": round(float(np.median(times)) / 1000, 2) if times else None,
        }
    by_pair: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        if r["label"] is not None and r["kind"] != "end-state":
            by_pair[int(r["pair"])].append(float(r["label"]))
    agree = total = 0
    for labels in by_pair.values():
        for first, second in itertools.combinations(labels, 2):
            total += 1
            agree += first == second
    sided = [r for r in rows if r["choice"] in ("left", "right")]
    left = sum(r["choice"] == "left" for r in sided)
    times_s = [float(r["response_ms"]) / 1000 for r in rows]
    seconds = answer_seconds(rows)
    return {
        "study": str(folder),
        "participants": len(people),
        "answers": len(rows),
        "finished": sum(p["answers"] >= spec.queries for p in people.values()),
        "people": people,
        "agreement": {
            "shared_pairs": sum(len(v) >= 2 for v in by_pair.values()),
            "pairs_of_people": total,
            "rate": agree / total if total else None,
        },
        "position_bias": {
            "left_share": left / len(sided) if sided else None,
            "ci95": list(wilson_interval(left, len(sided))),
            "answers": len(sided),
        },
        "response_s": {
            "median": float(np.median(times_s)) if times_s else None,
            "p90": float(np.percentile(times_s, 90)) if times_s else None,
        },
        "final": final_figures(store.all_finals()),
        "answer_seconds": seconds,
        "costs": seconds["costs"],
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as the command prints it."""
    lines = [
        f"{report['participants']} participants, {report['answers']} answers, "
        f"{report['finished']} finished",
        *_final_lines(report["final"]),
        f"{'person':>8} {'answers':>8} {'A':>3} {'B':>3} {'eq':>3} {'?':>3} {'median s':>9}",
    ]
    for name, p in report["people"].items():
        median = "-" if p["median_response_s"] is None else f"{p['median_response_s']:.1f}"
        lines.append(
            f"{name:>8} {p['answers']:>4}/{p['of']:<3} {p['left']:>3} {p['right']:>3} "
            f"{p['equal']:>3} {p['cant_tell']:>3} {median:>9}"
        )
    agreement = report["agreement"]
    rate = "-" if agreement["rate"] is None else f"{agreement['rate']:.2f}"
    lines.append(
        f"agreement on shared queries: {rate} ({agreement['shared_pairs']} pairs answered by "
        f"two or more, {agreement['pairs_of_people']} pairs of people)"
    )
    seconds = report["answer_seconds"]
    if seconds["median_s"]:
        lines.append(
            "median seconds per answer: "
            + ", ".join(
                f"{name} {value:.1f} s ({seconds['answers'][name]})"
                for name, value in seconds["median_s"].items()
            )
            + f"; as answer costs (--costs): {report['costs']}"
        )
    bias = report["position_bias"]
    if bias["left_share"] is None:
        lines.append("position bias: no A-or-B answers yet")
    else:
        low, high = bias["ci95"]
        lines.append(
            f"position bias: the left clip chosen in {bias['left_share']:.2f} of "
            f"{bias['answers']} A-or-B answers (95% CI {low:.2f}-{high:.2f}; 0.5 = none)"
        )
    return "\n".join(lines)


def _final_lines(final: dict[str, Any]) -> list[str]:
    if not final["chose"]:
        return ["blind final choice: nobody has chosen yet"]
    low, high = final["win_rate_ci95"]
    lines = [
        f"blind final choice: personalized robot's win rate over BTL's {final['win_rate']:.2f} "
        f"(95% CI {low:.2f}-{high:.2f}; {final['wins']} wins, {final['ties']} about equal, "
        f"{final['losses']} losses of {final['chose']})"
    ]
    for kind, name in (("vpl", "personalized"), ("btl", "BTL")):
        rating = final["ratings"][kind]
        if rating["n"]:
            lo, hi = rating["ci95"]
            lines.append(
                f"  {name} rated {rating['mean']:.2f} of 7 (95% CI {lo:.2f}-{hi:.2f}, "
                f"{rating['n']} ratings)"
            )
    return lines


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Answers per person by choice, and each person's left share (``report.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["people"])
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    counts, bias, end, seconds = axes
    bottom = np.zeros(len(names))
    for choice, label in zip(CHOICES, ("A", "B", "equal", "can't tell"), strict=True):
        values = np.asarray([report["people"][n][choice] for n in names], float)
        counts.bar(names, values, bottom=bottom, label=label)
        bottom += values
    ranked = np.asarray([report["people"][n]["ranked_or_rated"] for n in names], float)
    counts.bar(names, ranked, bottom=bottom, label="ranked or rated")
    counts.set_title("answers per person")
    counts.legend(fontsize=8)
    counts.tick_params(axis="x", rotation=90)
    share = [
        p["left"] / (p["left"] + p["right"]) if p["left"] + p["right"] else np.nan
        for p in report["people"].values()
    ]
    bias.bar(names, share, color="tab:gray")
    bias.axhline(0.5, color="k", linestyle="--", linewidth=1)
    bias.set_ylim(0, 1)
    bias.set_title("share of A-or-B answers picking the left clip")
    bias.tick_params(axis="x", rotation=90)
    _plot_end(end, report["final"])
    medians = report["answer_seconds"]["median_s"]
    seconds.bar(list(medians), list(medians.values()), color="tab:green")
    seconds.set_title("median seconds per answer")
    seconds.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def _plot_end(axis: Any, final: dict[str, Any]) -> None:
    """The blind end: the win rate and each robot's mean rating (out of 7, scaled to 0-1),
    with their 95% intervals."""
    bars = [("win rate", final["win_rate"], final["win_rate_ci95"])]
    for kind, name in (("vpl", "personalized\nrating / 7"), ("btl", "BTL\nrating / 7")):
        rating = final["ratings"][kind]
        if rating["mean"] is not None:
            bars.append((name, rating["mean"] / 7, [v / 7 for v in rating["ci95"]]))
    shown = [(n, v, ci) for n, v, ci in bars if v is not None]
    for i, (_, value, (low, high)) in enumerate(shown):
        axis.bar(i, value, color="tab:blue" if i == 0 else "tab:gray")
        axis.errorbar(i, value, yerr=[[value - low], [high - value]], color="k", capsize=4)
    axis.set_xticks(range(len(shown)), [n for n, _, _ in shown])
    axis.axhline(0.5, color="k", linestyle="--", linewidth=1)
    axis.set_ylim(0, 1.05)
    axis.set_title(f"the blind end ({final['chose']} chose)")


@dataclass
class StudyReportOptions:
    """Report a study's answers: per person, agreement, position bias, with a plot."""

    study: str = field(metadata={"help": "the study folder"})
    out: str = field(
        default="", metadata={"help": "folder for report.json/png (default: the study)"}
    )
    overwrite: bool = field(
        default=False, metadata={"help": "replace a report.json/png already in --out"}
    )


def study_report_command(options: StudyReportOptions) -> dict[str, Any]:
    """Print the report and write its JSON and plot."""
    check_study_folder(options.study)
    out = Path(options.out or options.study)
    for name in ("report.json", "report.png"):
        check_output(out / name, options.overwrite, "report", flag="--out")
    report = study_report(options.study)
    with atomic_path(out / "report.json") as temp:
        temp.write_text(json.dumps(report, indent=2))
    plot_report(report, out / "report.png")
    print(format_report(report))
    print(f"wrote {out / 'report.json'} and {out / 'report.png'}")
    return report
