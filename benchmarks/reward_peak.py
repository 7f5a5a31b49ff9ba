"""Where the learned reward peaks for each training user, given all of that user's answers.

For a table-point task (PlatePlacement, continuous goals) it measures, side by side in one
run, how well each reward model (``--model``, several to compare decoders) locates every
user of a preference dataset from all the answers that user gave:

* ``peak``: the learned reward's peak over placed-object states (:class:`PeakFinder`) under
  the user's posterior mean z given all of the user's answers, against the user's goal;
  ``--posterior``: the encoder's (what the policy trains on) and the model's likelihood
  posterior (what ``infer_user`` serves new users with), each a row;
* ``true_family``: the best-disc estimate of the goal under the *true* reward family and
  labelling model given the same answers (:mod:`robopref.users.ceiling`): what the answers allow.

Each prints the median distance, its 90th percentile, and the share of users within the
success radius. Users are split as the checkpoint's training run split them (``train`` and
``held-out`` rows) when it stored a split of this dataset; a loop's models refit on
every user with a new validation share each round, so their rows cover all users.

The users' goals are hidden knowledge, read here for evaluation only: from the dataset
(``robopref collect``), or, for a loop's answers (``--loop DIR``: ``DIR/vpl.npz`` and
``DIR/vpl.pt``, whose goals are blank), by rebuilding the loop's training users from its
seed. ``python benchmarks/reward_peak.py --loop runs/continuous --json F`` prints the
figures of the continuous issue's "peak within 3 cm given all of a training user's answers".
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from robopref.data.dataset import PreferenceDataset
from robopref.data.rollouts import make_env
from robopref.files import check_output, write_json_atomic
from robopref.loop.run import LoopOptions, saved_options, training_users
from robopref.reward.active import POSTERIORS, infer_user
from robopref.reward.base import RewardModel
from robopref.reward.data import dataset_fingerprint
from robopref.reward.evaluation import posterior_means
from robopref.reward.inputs import reward_input, reward_view
from robopref.reward.peak import PeakFinder
from robopref.reward.registry import load_checkpoint
from robopref.users.ceiling import GoalGrid, answer_probs, best_disc, log_likelihood, normalise
from robopref.users.hidden import hidden_knowledge
from robopref.users.population import Population, resolve_population


def user_goals(dataset: PreferenceDataset, loop: LoopOptions | None) -> np.ndarray:
    """``(U, 2)`` the users' goals: from the loop's seed, else from the dataset."""
    with hidden_knowledge("evaluation"):
        if loop is not None:
            users = training_users(loop)
            if len(users) != dataset.n_users:
                raise SystemExit(
                    f"the loop recruited {len(users)} users but its dataset has {dataset.n_users}"
                )
            return np.stack([np.asarray(u.goal, dtype=np.float64) for u in users])
    goals = np.asarray(dataset.user_goal, dtype=np.float64)
    if goals.ndim != 2 or np.isnan(goals).any():
        raise SystemExit(
            "this dataset holds no users' goals (a loop's answers): pass --loop DIR instead"
        )
    return goals


def true_family_estimates(
    population: Population, dataset: PreferenceDataset, grid: GoalGrid
) -> np.ndarray:
    """``(U, 2)``: each user's best-disc goal under the true family, from all its answers."""
    probs = answer_probs(
        population, population.label_model, grid.points, dataset.feat_a, dataset.feat_b
    )
    points = []
    for user in range(dataset.n_users):
        own = dataset.user_indices(user)
        posterior = normalise(
            np.log(grid.uniform()) + log_likelihood(probs[:, own], dataset.label[own])
        )
        points.append(best_disc(grid, posterior).point)
    return np.stack(points)


def all_answer_means(model: RewardModel, view: PreferenceDataset, posterior: str) -> np.ndarray:
    """``(U, Z)``: each user's posterior mean given all of its answers, by ``posterior``."""
    if posterior == "encoder":
        return posterior_means(model, view)
    means = []
    for user in range(view.n_users):
        own = view.user_indices(user)
        result = infer_user(
            model, lambda i, own=own: float(view.label[own[i]]), len(own), "random",
            (view.obs_a[own], view.obs_b[own]), rng=user, posterior=posterior,
        )  # fmt: skip
        means.append(result.mean)
    return np.stack(means)


def summary(distance: np.ndarray, radius: float) -> dict[str, float]:
    """Median, 90th percentile and share within ``radius`` of distances (m)."""
    return {
        "users": int(len(distance)),
        "median_cm": float(100 * np.median(distance)),
        "p90_cm": float(100 * np.percentile(distance, 90)),
        "within_radius": float(np.mean(distance < radius)),
    }


def user_split(payload: dict[str, Any], dataset: PreferenceDataset) -> dict[str, np.ndarray]:
    """The users of each row: the checkpoint's train/held-out split of this dataset, or all."""
    split = payload.get("split")
    if split and split.get("dataset_fingerprint") == dataset_fingerprint(dataset):
        test = np.asarray(split["test_users"], dtype=int)
        return {"train": np.setdiff1d(np.arange(dataset.n_users), test), "held-out": test}
    return {"all": np.arange(dataset.n_users)}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every model's peak distances and the true family's, as one JSON-ready dict."""
    loop = saved_options(args.loop) if args.loop else None
    data_path = args.data or str(Path(args.loop) / "vpl.npz")
    models = args.model or [str(Path(args.loop) / "vpl.pt")]
    dataset = PreferenceDataset.load(data_path)
    env_kwargs = dataset.meta.get("env_kwargs") or {}
    env = make_env(dataset.env_id, env_kwargs)[0]
    spec = args.population or (loop.population if loop else dataset.meta.get("population"))
    population = resolve_population(spec, env)
    grid = GoalGrid.of(population)
    goals = user_goals(dataset, loop)
    rows: list[dict[str, Any]] = []
    with hidden_knowledge("evaluation"):
        truth = np.linalg.norm(true_family_estimates(population, dataset, grid) - goals, axis=-1)
    for path in models:
        model, payload = load_checkpoint(path, expected_env=dataset.env_id)
        if not PeakFinder.supports(model, env):
            raise SystemExit(f"{path}: a latent reward model on features is needed for a peak")
        finder = PeakFinder(model, env)
        view = reward_view(dataset, reward_input(model))
        decoder = getattr(getattr(model, "config", None), "decoder", None)
        for posterior in args.posterior:
            peaks = finder.peaks(all_answer_means(model, view, posterior))
            distance = np.linalg.norm(peaks - goals, axis=-1)
            for name, users in user_split(payload, view).items():
                rows.append({"model": path, "decoder": decoder, "posterior": posterior,
                             "users": name, "peak": summary(distance[users], grid.radius),
                             "true_family": summary(truth[users], grid.radius)})  # fmt: skip
    return {"data": data_path, "population": spec, "answers_per_user":
            float(dataset.n_pairs / dataset.n_users), "rows": rows}  # fmt: skip


def report(result: dict[str, Any]) -> None:
    """Print one line per model and user subset."""
    print(
        f"{result['data']} ({result['population']}, {result['answers_per_user']:.0f} answers "
        "per user): distance from each user's goal, median / p90 cm and share within radius"
    )
    for row in result["rows"]:
        peak, truth = row["peak"], row["true_family"]
        print(
            f"  {row['model']} [{row['posterior']}, {row['users']}, {peak['users']} users]: peak "
            f"{peak['median_cm']:.1f} / {peak['p90_cm']:.1f} cm, {peak['within_radius']:.2f}; "
            f"true family {truth['median_cm']:.1f} / {truth['p90_cm']:.1f} cm, "
            f"{truth['within_radius']:.2f}"
        )


def main() -> None:
    """Parse the options, measure, print, write ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", default=None, help="a finished loop's --out")
    parser.add_argument("--data", default=None, help="a dataset (default: the loop's vpl.npz)")
    parser.add_argument("--model", nargs="+", default=None,
                        help="reward checkpoints (default: the loop's vpl.pt)")  # fmt: skip
    parser.add_argument("--population", default=None,
                        help="default: the loop's or the dataset's")  # fmt: skip
    parser.add_argument(
        "--posterior", nargs="+", default=list(POSTERIORS), choices=POSTERIORS,
        help="the user's z from the encoder and/or the model's likelihood (infer_user's)",
    )  # fmt: skip
    parser.add_argument("--json", default=None, help="write the figures here")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if not args.loop and not (args.data and args.model):
        parser.error("pass --loop DIR, or --data NPZ and --model CKPT ...")
    if args.json:
        check_output(Path(args.json), args.overwrite, what="benchmark output", flag="--json")
    result = measure(args)
    report(result)
    if args.json:
        write_json_atomic(args.json, result)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
