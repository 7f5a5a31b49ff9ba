"""``robopref table --sweep SWEEP``: the benchmark table of a sweep, mean and 95% CI over seeds.

One row per task, population, swept options and method, over the sweep's seeds:

* **success** on the new users, overall and per group;
* **win rate vs BTL**: per seed, the share of the method's episodes whose true return beats
  BTL's on the same new user and episode (ties count half; every method of a seed is
  evaluated on the same users, see :class:`robopref.sweep.grid.EvaluateSettings`);
* **accuracy / ceiling**: the reward model's held-out pairwise accuracy as a fraction of the
  Bayes ceiling (the loop's last held-out check; not for the oracle, which has no model);
* **answers per user** the method's training users gave;
* **wall s**: the cell's own wall time (training and evaluation; a CPL cell includes the VPL
  loop that gathered its answers, less that loop's final PPO policy).

Each figure is the mean over seeds with a 95% Student-t interval (``mean ± t * sd /
sqrt(n)``; one seed: no interval). Failed or unfinished cells are left out and counted.
Writes ``table.md`` and ``table.png`` into the sweep folder (or ``--out``); existing ones
are replaced only with ``--overwrite``.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robopref.files import atomic_path, check_output, check_writable, save_figure_atomic
from robopref.sweep.run import RESULTS_JSON

#: two-sided 95% Student-t quantiles by degrees of freedom (above 30: the normal's)
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}  # fmt: skip
METHOD_ORDER = ("vpl", "lowrank", "mixture", "dpl", "cpl", "btl", "cpl-plain", "oracle")


def t_quantile(df: int) -> float:
    """The 97.5% Student-t quantile for ``df`` degrees of freedom (the next lower df listed)."""
    if df > 30:
        return 1.96
    return T_975[max(k for k in T_975 if k <= df)]


def mean_ci(values: list[float]) -> tuple[float, float, int]:
    """``(mean, half-width of the 95% interval, n)``; NaN half-width for one value."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    if not clean:
        return math.nan, math.nan, 0
    mean = float(np.mean(clean))
    if len(clean) < 2:
        return mean, math.nan, 1
    half = t_quantile(len(clean) - 1) * float(np.std(clean, ddof=1)) / math.sqrt(len(clean))
    return mean, half, len(clean)


def _win_rate(mine: list[dict], theirs: list[dict]) -> float:
    returns = {(e["user"], e["episode"]): e["return"] for e in theirs}
    wins = [
        1.0 if e["return"] > returns[key] else 0.5 if e["return"] == returns[key] else 0.0
        for e in mine
        if (key := (e["user"], e["episode"])) in returns
    ]
    return float(np.mean(wins)) if wins else math.nan


def _damaged(path: Path, problem: str, sweep: Path) -> ValueError:
    return ValueError(
        f"{path} {problem}: it was not written by `robopref sweep`; run the sweep again "
        f"(`robopref sweep FILE.yaml --out {sweep}`: finished cells are skipped) to rewrite it"
    )


def _read_json(path: Path, sweep: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _damaged(path, f"is damaged (not JSON: {error})", sweep) from None


#: what the table reads of each record of results.json
RECORD_KEYS = ("name", "task", "env_kwargs", "population", "method", "seed", "grid")


def load_cells(sweep: Path) -> list[dict[str, Any]]:
    """Every cell record of ``results.json``, with its episodes from the cell's result."""
    path = sweep / RESULTS_JSON
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: run `robopref sweep FILE.yaml --out {sweep}` first"
        )
    data = _read_json(path, sweep)
    records = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise _damaged(path, "has no list of 'cells'", sweep)
    for index, record in enumerate(records):
        cell = record.get("cell") if isinstance(record, dict) else None
        if not isinstance(cell, dict) or "status" not in record:
            raise _damaged(
                path, f"has a record (#{index + 1}) without its 'cell' or 'status'", sweep
            )
        missing = [k for k in RECORD_KEYS if k not in cell]
        if missing or (
            record["status"] == "done" and "success" not in (record.get("metrics") or {})
        ):
            what = f"its cell's {', '.join(missing)}" if missing else "its 'metrics'"
            raise _damaged(
                path, f"has a record ({cell.get('name', index + 1)}) without {what}", sweep
            )
        result = sweep / "cells" / cell["name"] / "result.json"
        record["episodes"] = []
        if record["status"] == "done" and result.is_file():
            episodes = _read_json(result, sweep)
            if not isinstance(episodes, dict) or not isinstance(episodes.get("episodes"), list):
                raise _damaged(result, "has no 'episodes'", sweep)
            record["episodes"] = episodes["episodes"]
    return records


def benchmark_rows(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The table's rows (module docstring) and the number of cells left out."""
    done = [r for r in records if r["status"] == "done"]
    btl = {
        (r["cell"]["task"], tuple(r["cell"]["env_kwargs"]), r["cell"]["population"],
         json.dumps(r["cell"]["grid"]), r["cell"]["seed"]): r["episodes"]
        for r in done if r["cell"]["method"] == "btl"
    }  # fmt: skip
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in done:
        c = record["cell"]
        groups[(c["task"], tuple(c["env_kwargs"]), c["population"], json.dumps(c["grid"]),
                c["method"])].append(record)  # fmt: skip
    rows = []
    for (task, kwargs, population, grid, method), cells in groups.items():
        metrics = [c["metrics"] for c in cells]
        group_names = sorted({k for m in metrics for k in m if k.startswith("success_group_")})
        wins = []
        for c in cells:
            key = (task, kwargs, population, grid, c["cell"]["seed"])
            if method != "btl" and key in btl:
                wins.append(_win_rate(c["episodes"], btl[key]))
        of_ceiling = [m.get("accuracy_of_ceiling") for m in metrics]
        rows.append({
            "task": task.split("/")[-1], "env_kwargs": " ".join(kwargs),
            "population": population, "grid": " ".join(
                f"{k}={v}" for k, v in json.loads(grid).items()),
            "method": method, "seeds": sorted(c["cell"]["seed"] for c in cells),
            "success": mean_ci([m["success"] for m in metrics]),
            "groups": {g.removeprefix("success_group_"): mean_ci([m.get(g) for m in metrics])
                       for g in group_names},
            "win_rate_vs_btl": mean_ci(wins) if wins else None,
            "accuracy_of_ceiling": mean_ci(of_ceiling) if any(
                v is not None for v in of_ceiling) else None,
            "answers_per_user": None if method == "oracle" else mean_ci(
                [m.get("answers_per_user") for m in metrics]),  # the oracle asks nobody
            "wall_s": mean_ci([c.get("wall_s") for c in cells]),
        })  # fmt: skip
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    rows.sort(key=lambda r: (r["task"], r["env_kwargs"], r["population"], r["grid"],
                             order.get(r["method"], 99)))  # fmt: skip
    return rows, len(records) - len(done)


def _cell(figure: tuple[float, float, int] | None, digits: int = 2) -> str:
    if figure is None or figure[2] == 0:
        return "-"
    mean, half, _ = figure
    if math.isnan(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def markdown_table(rows: list[dict[str, Any]], left_out: int) -> str:
    """The rows as a Markdown table, with a line on the seeds and the interval."""
    lines = [
        "| task | population | method | seeds | success | success per group | win rate vs BTL "
        "| accuracy / ceiling | answers per user | wall s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        task = row["task"] + (f" ({row['env_kwargs']})" if row["env_kwargs"] else "")
        population = row["population"] + (f" ({row['grid']})" if row["grid"] else "")
        groups = " / ".join(_cell(f) for f in row["groups"].values()) or "-"
        lines.append(
            f"| {task} | {population} | {row['method'].upper()} | {len(row['seeds'])} "
            f"| {_cell(row['success'])} | {groups} | {_cell(row['win_rate_vs_btl'])} "
            f"| {_cell(row['accuracy_of_ceiling'])} | {_cell(row['answers_per_user'], 0)} "
            f"| {_cell(row['wall_s'], 0)} |"
        )
    lines.append("")
    lines.append("Mean over seeds ± the half-width of the 95% Student-t interval.")
    if left_out:
        lines.append(f"{left_out} failed or unfinished cells are left out.")
    return "\n".join(lines) + "\n"


def plot_table(rows: list[dict[str, Any]], path: Path) -> Path:
    """Success per method with its 95% interval, one panel per task and population."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["task"], r["env_kwargs"], r["population"], r["grid"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for axis, panel in zip(axes[0], panels, strict=True):
        mine = [
            r for r in rows if (r["task"], r["env_kwargs"], r["population"], r["grid"]) == panel
        ]
        means = [r["success"][0] for r in mine]
        errors = [0.0 if math.isnan(r["success"][1]) else r["success"][1] for r in mine]
        axis.bar([r["method"].upper() for r in mine], means, yerr=errors, capsize=4,
                 color="tab:blue")  # fmt: skip
        axis.set_ylim(0, 1.05)
        axis.set_title(" ".join(p for p in panel if p), fontsize=9)
        axis.set_ylabel("success on new users")
    fig.tight_layout()
    return save_figure_atomic(fig, path)


@dataclass
class TableOptions:
    """Print and write the benchmark table of a sweep (mean and 95% CI over seeds)."""

    sweep: str = field(metadata={"help": "the sweep folder (robopref sweep --out)"})
    out: str = field(default="", metadata={"help": "folder for table.md/png (default: sweep)"})
    overwrite: bool = field(
        default=False, metadata={"help": "replace an existing table.md and table.png in --out"}
    )


def table_command(options: TableOptions) -> int:
    """Build the table, print it, write ``table.md`` and ``table.png`` (existing ones only
    with ``--overwrite``)."""
    sweep = Path(options.sweep)
    out = Path(options.out or sweep)
    exists = (out / "table.md").exists() or (out / "table.png").exists()
    check_output(out / "table.md", options.overwrite, "table (table.md/png)", "--out", exists)
    check_writable(out / "table.png", "--out")
    rows, left_out = benchmark_rows(load_cells(sweep))
    if not rows:
        raise ValueError(f"no finished cell in {sweep}: nothing to tabulate")
    text = markdown_table(rows, left_out)
    with atomic_path(out / "table.md") as temp:
        temp.write_text(text)
    plot_table(rows, out / "table.png")
    print(text, end="")
    print(f"wrote {out / 'table.md'} and {out / 'table.png'}")
    return 0
