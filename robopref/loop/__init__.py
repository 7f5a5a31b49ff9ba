"""The RLHF loop: users answer round after round about what the current policies do.

:func:`run_loop` (``robopref loop``) orchestrates the stages; :mod:`robopref.loop.asking`
chooses the queries, :mod:`robopref.loop.arm` refits each method's reward model and
policy, :mod:`robopref.loop.report` checks them on held-out users.
"""

from robopref.loop.run import LoopOptions, loop_command, run_loop

__all__ = ["LoopOptions", "loop_command", "run_loop"]
