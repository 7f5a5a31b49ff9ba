"""One sweep cell: the full pipeline for one task, population, method and seed, in its folder.

* ``vpl``, ``btl``, ``dpl``: ``robopref loop --methods <method>`` (the users answer about
  that method's own policy, round after round), then ``robopref evaluate`` of its policy.
* ``oracle``: ``robopref train-policy --oracle`` on the population's goals with the loop's
  ``steps``, then ``robopref evaluate``.
* ``cpl``, ``cpl-plain``: ``robopref loop --methods vpl`` (the VPL loop's answers: the data
  CPL is measured on; the loop's own final PPO policy is skipped, ``CPL_LOOP_STEPS``), then
  ``robopref train-policy --method cpl`` on its answers, z from its VPL model (``cpl``) or
  none (``cpl-plain``), then ``robopref evaluate``.

Evaluation: ``EvaluateSettings`` new users (seed ``evaluate.seed + cell seed``: the same
users and episodes for every method of a seed), ``queries`` active answers each for a
latent policy. ``result.json`` is written last, atomically: it marks the cell finished. A
cell killed midway resumes (the loop's ``--resume``, the oracle's checkpoint); a folder
holding another configuration's result is refused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from robopref.files import write_json_atomic
from robopref.sweep.grid import CPL_METHODS, Cell

#: the final PPO steps of a CPL cell's VPL loop: its policy is not used (one PPO update)
CPL_LOOP_STEPS = 1
RESULT = "result.json"
CELL = "cell.json"


def read_result(folder: Path, cell: Cell) -> dict[str, Any] | None:
    """The cell's finished result, None if it has none; another configuration's: refused."""
    path = folder / RESULT
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} is damaged (not JSON: {error}): delete it and run the sweep again (the "
            "cell resumes from what its folder holds)"
        ) from None
    if not isinstance(result, dict) or not isinstance(result.get("cell"), dict):
        raise ValueError(
            f"{path} is not a cell's result (no 'cell'): delete it and run the sweep again"
        )
    if result["cell"].get("fingerprint") != cell.fingerprint():
        raise ValueError(
            f"{folder} holds a result of other settings than the sweep's cell {cell.name}: "
            "choose another --out for the changed sweep (or delete that cell's folder)"
        )
    return result


def _run_loop(cell: Cell, folder: Path, method: str = "", **changes: Any) -> dict[str, Any]:
    """The cell's loop of ``method`` (default: the cell's) with the options ``changes``."""
    from robopref.loop.run import LoopOptions, loop_command, read_state

    method = method or cell.method
    out = folder / "loop"
    options = LoopOptions(
        env=cell.task, env_kwargs=list(cell.env_kwargs), population=cell.population,
        methods=[method], seed=cell.seed, out=str(out), workers=1,
        resume=(out / "loop.json").exists(), progress=False,
        **{**cell.loop_options(), **changes},
    )  # fmt: skip
    loop_command(options)
    log = read_state(out)
    last = log["history"][-1]
    figures = last["methods"][method]
    return {
        "policy": str(out / f"policy_{method}"),
        "reward": str(out / f"{method}.pt"),
        "data": str(out / f"{method}.npz"),
        "answers_per_user": int(last["answers_per_user"]),
        "accuracy": figures.get("accuracy"),
        "ceiling": figures.get("ceiling"),
    }


def _run_oracle(cell: Cell, folder: Path, device: str) -> dict[str, Any]:
    from robopref.loop.run import LoopOptions
    from robopref.policies.train import TrainPolicyOptions, train_policy_command

    out = folder / "policy_oracle"
    steps = int(cell.loop_options().get("steps", LoopOptions.steps))
    train_policy_command(
        TrainPolicyOptions(
            oracle=True, env=cell.task, env_kwargs=list(cell.env_kwargs),
            population=cell.population, steps=steps, out=str(out), name="oracle",
            seed=cell.seed, device=device, progress=False,
            resume=(out / "checkpoint.zip").exists() and not (out / "model.zip").exists(),
        )
    )  # fmt: skip
    return {"policy": str(out), "reward": "", "answers_per_user": 0}


def _run_cpl(cell: Cell, folder: Path, device: str) -> dict[str, Any]:
    from robopref.policies.train import TrainPolicyOptions, train_policy_command

    loop = _run_loop(cell, folder, "vpl", steps=CPL_LOOP_STEPS)
    out = folder / f"policy_{cell.method}"
    if not (out / "meta.json").is_file():
        train_policy_command(
            TrainPolicyOptions(
                method="cpl", cpl_latent="none" if cell.method == "cpl-plain" else "vpl",
                reward=loop["reward"], data=loop["data"], population=cell.population,
                out=str(out), name=cell.method, seed=cell.seed, device=device,
                eval_episodes=0, overwrite=True, progress=False,
                **{f"cpl_{k}": v for k, v in cell.cpl},
            )
        )  # fmt: skip
    # The loop's accuracy is its VPL model's: not a figure of the CPL policy.
    return {**loop, "policy": str(out), "accuracy": None, "ceiling": None}


def _evaluate(cell: Cell, folder: Path, policy: str, reward: str) -> dict[str, Any]:
    from robopref.policies.evaluate_command import EvaluateOptions, evaluate_command
    from robopref.policies.evaluation import summarize

    path = folder / "evaluate.json"
    settings = cell.evaluate
    evaluate_command(
        EvaluateOptions(
            policy=[policy], reward=reward, population=cell.population, users=settings.users,
            queries=str(settings.queries), episodes=settings.episodes,
            seed=settings.seed + cell.seed, json=str(path), overwrite=True,
        )
    )  # fmt: skip
    report = json.loads(path.read_text())
    episodes = [
        {k: e[k] for k in ("user", "group", "episode", "success", "return")}
        for e in report["episodes"]
        if e["queries"] in (None, settings.queries)
    ]
    # the report's rows are of one policy and one query budget: its figures, flat
    return {"metrics": summarize(report["results"]), "episodes": episodes}


def _ray_node() -> str | None:
    """The id of the Ray node this cell ran on (None outside Ray)."""
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency
        return None
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def run_cell(cell_json: dict[str, Any], folder: str, device: str = "cpu") -> dict[str, Any]:
    """Run the cell (module docstring) and return its result (also ``folder/result.json``)."""
    import torch

    torch.set_num_threads(1)
    cell = Cell.from_json(cell_json)
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    existing = read_result(root, cell)
    if existing is not None:
        return existing
    write_json_atomic(root / CELL, cell.to_json())
    start = time.perf_counter()
    if cell.method == "oracle":
        trained = _run_oracle(cell, root, device)
    elif cell.method in CPL_METHODS:
        trained = _run_cpl(cell, root, device)
    else:
        trained = _run_loop(cell, root)
    evaluated = _evaluate(cell, root, trained["policy"], trained["reward"])
    accuracy, ceiling = trained.get("accuracy"), trained.get("ceiling")
    metrics = {
        **evaluated["metrics"],
        "answers_per_user": trained["answers_per_user"],
        "accuracy": accuracy,
        "ceiling": ceiling,
        "accuracy_of_ceiling": accuracy / ceiling if accuracy is not None and ceiling else None,
    }
    result = {
        "cell": cell.to_json(),
        "status": "done",
        "node": _ray_node(),
        "wall_s": time.perf_counter() - start,
        "metrics": metrics,
        "episodes": evaluated["episodes"],
    }
    write_json_atomic(root / RESULT, result)
    return result
