"""Speed of the reward models: VPL training on a 200-user dataset, few-shot user inference.

Measures, on this machine:

* ``train_s``: wall time of ``robopref train-reward``'s training (VPL, default options,
  its default ``--threads`` included: the env's features as input; early stopping included)
  on ``--data`` (default ``data/plate.npz``, 200 users x 16 queries; target <= 120 s on 2
  CPU cores), with the epochs run and the best epoch;
* ``loaded_train_s``: the same training again while one CPU-bound process (a Python busy
  loop, started here and killed after) runs beside it, as on a machine shared with one
  other job, and ``loaded_ratio = loaded_train_s / train_s`` (target <= 2: the default
  must not collapse when the machine is shared);
* ``infer_ms``: :func:`robopref.reward.infer_user` with ``k = 4`` active queries among
  ``--candidates`` candidate pairs (a few hundred, drawn from the dataset's pairs), median
  and worst of ``--repeats`` simulated users (target <= 50 ms), the candidates' feature
  precomputation included; and the same with random queries for comparison. Inference
  runs on one torch thread, as ``robopref evaluate`` serves new users. ``--also CKPT ...``
  times the same calls, on the same candidates, for other checkpoints of the same task
  (other decoders and sizes, say a continuous loop's ``vpl.pt``), in the same run.

With ``--device cuda`` (or ``auto`` on a GPU machine) it trains and infers there. ``make
bench`` runs ``python benchmarks/reward_speed.py --json runs/bench/reward_speed.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from robopref.data.dataset import PreferenceDataset
from robopref.files import write_json_atomic
from robopref.reward import load_reward_model
from robopref.reward.active import infer_user
from robopref.reward.inputs import reward_input, reward_view
from robopref.reward.nets import resolve_device
from robopref.reward.train_command import TrainRewardOptions, train_reward_command

#: the default of ``robopref train-reward --threads``, the figure this benchmark measures.
DEFAULT_THREADS = TrainRewardOptions().threads


@contextlib.contextmanager
def busy_process() -> Iterator[None]:
    """One CPU-bound process (a Python busy loop) running for the duration of the block."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start spinning before the measurement does
        yield
    finally:
        process.kill()
        process.wait()


def time_training(
    data: str, device: str, seed: int, threads: int, out: Path
) -> tuple[float, Path, dict]:
    """Train VPL with the command's defaults; return (seconds, checkpoint, its summary)."""
    options = TrainRewardOptions(
        data=data,
        model="vpl",
        out=str(out),
        device=device,
        seed=seed,
        threads=threads,
        overwrite=True,
    )
    start = time.perf_counter()
    train_reward_command(options)
    seconds = time.perf_counter() - start
    payload = torch.load(out, weights_only=True)
    summary = {"epochs_run": len(payload["history"]), "best_epoch": payload["best"]["epoch"] + 1}
    return seconds, out, summary


def time_inference(
    model_path: Path, data: str, device: str, candidates: int, repeats: int, strategy: str
) -> dict[str, float]:
    """Median and worst milliseconds of one ``infer_user`` call with k = 4."""
    model = load_reward_model(model_path, device=resolve_device(device))
    dataset = reward_view(PreferenceDataset.load(data), reward_input(model))
    rng = np.random.default_rng(0)
    times = []
    for repeat in range(repeats + 1):
        pick = rng.choice(dataset.n_pairs, size=candidates, replace=False)
        pool = (dataset.obs_a[pick], dataset.obs_b[pick])
        answers = dataset.label[pick]
        start = time.perf_counter()
        infer_user(model, lambda i, a=answers: float(a[i]), 4, strategy, pool, repeat)
        if repeat:  # the first call warms up allocators and caches
            times.append(1000 * (time.perf_counter() - start))
    return {"median_ms": float(np.median(times)), "max_ms": float(np.max(times))}


def main() -> None:
    """Run the benchmark and print (and optionally write) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/plate.npz")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"torch CPU threads (default: train-reward's, {DEFAULT_THREADS})",
    )
    parser.add_argument(
        "--no-loaded", action="store_true", help="skip the run beside a busy process"
    )
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--also", nargs="+", default=[], metavar="CKPT",
        help="more reward checkpoints of the task to time infer_user on, side by side",
    )  # fmt: skip
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    for path in args.also:
        if not Path(path).is_file():
            raise SystemExit(f"--also {path} does not exist: pass reward-model checkpoints")
    if not Path(args.data).is_file():
        raise SystemExit(
            f"{args.data} does not exist: make it with `robopref collect --out {args.data}`"
        )
    with tempfile.TemporaryDirectory(prefix="reward_speed_") as folder:
        result = measure(args, Path(folder))
    report(result, args)


def measure(args: argparse.Namespace, folder: Path) -> dict:
    """Train (idle, then beside a busy process), then time inference; the figures as a dict."""
    train_s, path, summary = time_training(
        args.data, args.device, args.seed, args.threads, folder / "vpl.pt"
    )
    result = {
        "data": args.data,
        "device": str(resolve_device(args.device)),
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "train_s": train_s,
        **summary,
        "candidates": args.candidates,
        "k": 4,
    }
    if not args.no_loaded:
        with busy_process():
            loaded_s, _, loaded = time_training(
                args.data, args.device, args.seed, args.threads, folder / "vpl_loaded.pt"
            )
        result.update(loaded_train_s=loaded_s, loaded_ratio=loaded_s / train_s)
        result["loaded_epochs_run"] = loaded["epochs_run"]
    torch.set_num_threads(1)
    for strategy in ("active", "random"):
        timing = time_inference(
            path, args.data, args.device, args.candidates, args.repeats, strategy
        )
        result[f"infer_{strategy}_median_ms"] = timing["median_ms"]
        result[f"infer_{strategy}_max_ms"] = timing["max_ms"]
    result["also"] = {
        str(other): time_inference(
            Path(other), args.data, args.device, args.candidates, args.repeats, "active"
        )
        for other in args.also
    }
    return result


def describe(path: Path) -> str:
    """A checkpoint's path with its decoder and hidden sizes."""
    model = load_reward_model(path)
    config = getattr(model, "config", None)
    if config is None:
        return f"{path} ({model.kind})"
    hidden = "x".join(str(h) for h in config.hidden)
    return f"{path} ({model.kind}, {config.decoder}, hidden {hidden})"


def report(result: dict, args: argparse.Namespace) -> None:
    """Print the figures and write them to ``--json``."""
    print(
        f"VPL training on {args.data}: {result['train_s']:.1f} s ({result['epochs_run']} epochs, "
        f"best {result['best_epoch']}) on {result['device']} with --threads {args.threads} "
        f"({result['torch_threads']} torch threads, {result['cpu_count']} cores; target 120 s)"
    )
    if "loaded_train_s" in result:
        print(
            f"beside one busy process: {result['loaded_train_s']:.1f} s, idle "
            f"{result['train_s']:.1f} s: ratio {result['loaded_ratio']:.2f} (target <= 2)"
        )
    for strategy in ("active", "random"):
        print(
            f"infer_user k=4 {strategy} among {args.candidates} candidates: median "
            f"{result[f'infer_{strategy}_median_ms']:.1f} ms, worst "
            f"{result[f'infer_{strategy}_max_ms']:.1f} ms (target 50 ms)"
        )
    for other, timing in result["also"].items():
        print(
            f"infer_user k=4 active, {describe(Path(other))}: median {timing['median_ms']:.1f} "
            f"ms, worst {timing['max_ms']:.1f} ms (target 50 ms)"
        )
    if args.json:
        write_json_atomic(args.json, result)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
