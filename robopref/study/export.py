"""``robopref study export``: a study's answers as a preference dataset
(:class:`~robopref.data.dataset.PreferenceDataset`).

Each participant with at least one recorded answer is a user (in the order of their links;
the names ``p01``, ... are in ``meta["annotators"]``, never the tokens). Practice answers
are never exported. Every answer becomes the pairs it implies
(:func:`robopref.study.questions.implied_pairs`): a pair question is one pair in the pool's
own order (segment A, segment B) with ``label`` P(A preferred): 1, 0, 0.5 for "equal", NaN
for "can't tell"; a ranking, every earlier clip over every later one; a participant's
ratings, every two rated clips with different ratings; an end-state question, the two end
states, each held for the segment's length (their actions NaN). ``question`` gives each
pair's answer (its index in the per-answer lists of ``meta``), so a ranking's pairs stay
together.

Per answer, ``meta`` keeps what was shown and when: ``kind`` (the question type),
``pool_pair`` (a pair type's pool pair, else null) and ``items`` (a ranking's or rating's
pool items in shown order), ``shown_swapped`` (B was on the left), ``choice`` (as clicked),
``answer`` (a ranking's items best first, a rating), ``response_ms`` (server: page served to
answer stored) and ``client_ms`` (the page's own clock from the clips playing to the click,
null without JavaScript). The hidden fields are blank: real people have no goal to read.
``robopref train-reward --data`` reads the file as it reads any.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robopref.data.dataset import PreferenceDataset
from robopref.files import check_output
from robopref.study.questions import implied_pairs, implied_segments
from robopref.study.spec import check_study_folder
from robopref.study.store import StudyStore


def study_dataset(folder: str | Path) -> PreferenceDataset:
    """Every recorded answer of the study in ``folder`` as a dataset (module docstring)."""
    spec, study_pool = check_study_folder(folder)
    pool = study_pool.pool
    rows = StudyStore(folder).all_answers()
    if not rows:
        raise ValueError(f"the study {folder} has no answers yet: nothing to export")
    pairs = implied_pairs(rows, len(pool))
    if not pairs:
        raise ValueError(
            f"the study {folder}'s answers imply no preference yet (only skipped questions, "
            "or one rating per person): nothing to train on"
        )
    annotators = sorted({(r["participant"], r["name"]) for r in rows})
    user_of = {pid: u for u, (pid, _) in enumerate(annotators)}
    dataset = PreferenceDataset.from_answers(
        implied_segments(pool, pairs),
        np.asarray([p.label for p in pairs], np.float32),
        np.asarray([user_of[rows[p.row]["participant"]] for p in pairs], np.int64),
        env_id=spec.env_id,
        feature_names=pool.feature_names,
        n_users=len(annotators),
        question=np.asarray([p.row for p in pairs], np.int64),
        meta={
            "asked_by": "robopref study",
            "study": str(Path(folder).resolve()),
            "env_kwargs": spec.env_kwargs,
            "segment": spec.segment,
            "strategy": spec.strategy,
            "questions": spec.questions,
            "annotators": [name for _, name in annotators],
            "kind": [r["kind"] for r in rows],
            "pool_pair": [r["pair"] for r in rows],
            "items": [r["items"] for r in rows],
            "shown_swapped": [bool(r["swapped"]) for r in rows],
            "choice": [r["choice"] for r in rows],
            "answer": [r["answer"] for r in rows],
            "response_ms": [round(float(r["response_ms"]), 1) for r in rows],
            "client_ms": [r["client_ms"] for r in rows],
            "hidden_fields": "blank: answered by people, who have no goal to read",
        },
    )
    dataset.validate()
    return dataset


@dataclass
class StudyExportOptions:
    """Export a study's answers as a preference dataset (.npz)."""

    study: str = field(metadata={"help": "the study folder"})
    out: str = field(metadata={"help": "the dataset to write (.npz)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing --out"})


def study_export_command(options: StudyExportOptions) -> dict[str, Any]:
    """Write the dataset and print what it holds."""
    if not options.out.endswith(".npz"):
        raise ValueError(f"--out {options.out} must end in .npz (e.g. study_answers.npz)")
    check_output(options.out, options.overwrite, "dataset")
    dataset = study_dataset(options.study)
    dataset.save(options.out)
    answered = int((~np.isnan(dataset.label)).sum())
    print(
        f"{options.out}: {dataset.n_pairs} pairs ({answered} with a preference) implied by "
        f"{len(dataset.meta['choice'])} answers from "
        f"{dataset.n_users} participants; train on it with `robopref train-reward --data "
        f"{options.out} --model vpl`"
    )
    return {"pairs": dataset.n_pairs, "users": dataset.n_users}
