"""The ``robopref`` command line: one subcommand per job, each with one flat options dataclass.

A command module defines a dataclass of options (each field documented by
``field(metadata={"help": ...})``; where a setting belongs to a library config, the field
takes its default from it, see :mod:`robopref.options`) and a function that takes it.
Register it in ``COMMANDS`` below as ``name: ("module", "OptionsClass", "function",
"one-line help")``. Only the module of the command being run is imported, so ``robopref
--help`` and a command that renders nothing work whatever ``MUJOCO_GL`` says.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import math
import signal
import sys
import threading
import types
import typing
from collections.abc import Iterable, Sequence

COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "render": (
        "robopref.video.render",
        "RenderOptions",
        "render_command",
        "render a scripted rollout of a task to MP4 and GIF",
    ),
    "collect": (
        "robopref.data.collect",
        "CollectOptions",
        "collect_command",
        "collect a preference dataset from a population of synthetic users",
    ),
    "train-reward": (
        "robopref.reward.train_command",
        "TrainRewardOptions",
        "train_reward_command",
        "train a BTL, DPL or VPL reward model on a preference dataset",
    ),
    "eval-reward": (
        "robopref.reward.evaluate_command",
        "EvalRewardOptions",
        "eval_reward_command",
        "few-shot accuracy of reward models on held-out users, with plots",
    ),
    "train-policy": (
        "robopref.policies.train",
        "TrainPolicyOptions",
        "train_policy_command",
        "train a latent-conditioned SB3 policy on a reward model (or the oracle)",
    ),
    "evaluate": (
        "robopref.policies.evaluate_command",
        "EvaluateOptions",
        "evaluate_command",
        "success, true return and win rate of personalized policies on new users",
    ),
    "video": (
        "robopref.video.policies",
        "VideoOptions",
        "video_command",
        "personalized (and BTL) policies for several new users side by side, MP4 and GIF",
    ),
    "loop": (
        "robopref.loop.run",
        "LoopOptions",
        "loop_command",
        "the RLHF loop: users answer in rounds about the current policies' rollouts",
    ),
    "demo": (
        "robopref.demo",
        "DemoOptions",
        "demo_command",
        "collect, train rewards and policies, evaluate: the whole pipeline into runs/demo/",
    ),
    "sweep": (
        "robopref.sweep.run",
        "SweepOptions",
        "sweep_command",
        "run a benchmark sweep (task x population x method x seed) as Ray tasks, resumable",
    ),
    "table": (
        "robopref.sweep.table",
        "TableOptions",
        "table_command",
        "the benchmark table of a sweep: mean and 95%% CI over seeds, Markdown and a plot",
    ),
    "study create": (
        "robopref.study.create",
        "StudyCreateOptions",
        "study_create_command",
        "create a browser study: rendered clips, a database, one private link each",
    ),
    "study serve": (
        "robopref.study.serve",
        "StudyServeOptions",
        "study_serve_command",
        "serve a study's pages to its participants (127.0.0.1 unless --host)",
    ),
    "study export": (
        "robopref.study.export",
        "StudyExportOptions",
        "study_export_command",
        "a study's answers as a PreferenceDataset (participants as users)",
    ),
    "study report": (
        "robopref.study.report",
        "StudyReportOptions",
        "study_report_command",
        "answers per person, agreement, position bias and response times, with a plot",
    ),
}


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _finite_float(text: str) -> float:
    """A float option's value: NaN and infinity are refused by argparse (exit 2) by name."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _float_or_infinity(text: str) -> float:
    """A float option that may be infinite (``infinite_ok`` in its metadata), never NaN."""
    value = _finite_float(text) if text.strip().lower().lstrip("+-") not in ("inf",) else None
    return float(text) if value is None else value


def _argument_type(kind: type, infinite_ok: bool = False) -> typing.Callable[[str], typing.Any]:
    if kind is float:
        return _float_or_infinity if infinite_ok else _finite_float
    return kind


def add_dataclass_arguments(parser: argparse.ArgumentParser, options_type: type) -> None:
    """Add one ``--flag`` per dataclass field (``snake_case`` becomes ``--kebab-case``)."""
    hints = typing.get_type_hints(options_type)
    for field in dataclasses.fields(options_type):
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        default = (
            field.default_factory()  # type: ignore[misc]
            if field.default_factory is not dataclasses.MISSING
            else field.default
        )
        help_text = field.metadata.get("help", "")
        value_type = _argument_type(kind, field.metadata.get("infinite_ok", False))
        if kind is bool:
            parser.add_argument(
                flag,
                type=_parse_bool,
                nargs="?",
                const=True,
                default=default,
                help=f"{help_text} (default: {default})",
            )
        elif typing.get_origin(kind) in (list, tuple):
            (item,) = set(typing.get_args(kind)) - {Ellipsis}
            parser.add_argument(
                flag,
                type=_argument_type(item, field.metadata.get("infinite_ok", False)),
                nargs="+",
                default=default,
                help=f"{help_text} (default: {default})",
            )
        elif default is dataclasses.MISSING:  # a field without a default: a required flag
            parser.add_argument(flag, type=value_type, required=True, help=help_text)
        else:
            parser.add_argument(
                flag,
                type=value_type,
                default=default,
                help=f"{help_text} (default: {default})",
            )


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand.

    Only the ``commands`` named (default: all) get their options, which imports their
    modules; the others are listed with their one-line help.
    """
    wanted = set(COMMANDS if commands is None else commands)
    parser = argparse.ArgumentParser(
        prog="robopref", description="Personalized RL from preferences on MuJoCo tabletop tasks."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, (module, options_name, _, help_text) in COMMANDS.items():
        group, _, leaf = name.rpartition(" ")  # "study create": group "study", leaf "create"
        target = sub
        if group:
            if group not in groups:
                group_parser = sub.add_parser(group, help=f"{group} commands: {group} --help")
                groups[group] = group_parser.add_subparsers(
                    dest=f"{group}_command", required=True, metavar="SUBCOMMAND"
                )
            target = groups[group]
        if name not in wanted:
            target.add_parser(leaf, help=help_text)
            continue
        options_type = getattr(importlib.import_module(module), options_name)
        command_parser = target.add_parser(leaf, help=help_text, description=options_type.__doc__)
        add_dataclass_arguments(command_parser, options_type)
    return parser


def command_name(argv: Sequence[str]) -> str | None:
    """The registered command ``argv`` starts with (``"loop"``, ``"study create"``), if any."""
    for words in (2, 1):
        name = " ".join(argv[:words])
        if len(argv) >= words and name in COMMANDS:
            return name
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``robopref`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # The command is the first argument (the top level has no options but --help).
    command = command_name(argv)
    args = build_parser([command] if command else []).parse_args(argv)
    group_command = getattr(args, f"{args.command}_command", None)
    name = f"{args.command} {group_command}" if group_command else args.command
    module, options_name, function_name, _ = COMMANDS[name]
    loaded = importlib.import_module(module)
    options_type = getattr(loaded, options_name)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(options_type)}
    options = options_type(**values)
    # a kill (SIGTERM) ends the command as Ctrl-C does: its worker processes are ended with
    # it and what it saved can be resumed
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        result = getattr(loaded, function_name)(options)
    except KeyboardInterrupt:
        print(f"robopref {name}: interrupted{resume_hint(options)}", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as error:  # OSError: FileNotFound, read-only, ...
        print(f"robopref {name}: error: {error}", file=sys.stderr)
        return 2
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return result if isinstance(result, int) else 0  # a command may return a report


def _interrupt(signum: int, frame: object) -> None:
    """The SIGTERM handler of :func:`main`: raise ``KeyboardInterrupt`` where the command is."""
    raise KeyboardInterrupt


def resume_hint(options: object) -> str:
    """What to say after Ctrl-C: how to continue, for a command that can resume."""
    if hasattr(options, "retrain"):  # the demo skips the steps it finished
        return (": run the same command again to continue (finished steps are kept; the loop "
                "goes on from its last finished round)")  # fmt: skip
    if not hasattr(options, "resume"):
        return " (nothing was left half-written: outputs are written atomically)"
    out = getattr(options, "out", None)
    where = f" from what it saved in {out}" if out else ""
    return f": continue with the same command and --resume{where}"


if __name__ == "__main__":
    raise SystemExit(main())
