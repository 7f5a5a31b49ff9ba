""" "Your robot": the personalized policy's episode for a participant's z, beside BTL's.

After a participant's last answer the server infers their z from their answers alone (the
likelihood posterior, each answer by its type's likelihood, as evaluation does for new
users: :meth:`robopref.study.flow.Study.posterior`), rolls out the study's VPL policy
under it and, when the study has one, the BTL policy (the same episode seed: the same
start), and writes both as WebM clips under ``robot/``. Rendering runs on one background
worker, so answering stays fast; the page polls until the clips are ready. The clips are
cached: a returning participant gets the same files, and a server killed mid-render renders
again on the next visit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robopref.envs.wrappers import SetDown
from robopref.files import atomic_path
from robopref.policies.checkpoint import LoadedPolicy, load_policy, read_meta
from robopref.policies.rollout import make_eval_env, policy_env_kwargs, run_episode
from robopref.reward import load_reward_model
from robopref.reward.base import RewardModel
from robopref.study.create import CLIP_HEIGHT, CLIP_WIDTH
from robopref.study.spec import ROBOT_DIR, StudySpec
from robopref.video.writers import HOLD_SECONDS, write_webm

#: the robot clips a participant may fetch, by kind
ROBOT_KINDS = ("vpl", "btl")


def robot_clip_name(participant_name: str, kind: str) -> str:
    """The file name of a participant's robot clip of ``kind`` (``vpl`` or ``btl``)."""
    if kind not in ROBOT_KINDS:
        raise ValueError(f"robot clip kind {kind!r}: use one of {ROBOT_KINDS}")
    return f"{participant_name}_{kind}.webm"


class RobotRenderer:
    """Loads the study's policies once and renders participants' robot clips."""

    def __init__(
        self, folder: Path, spec: StudySpec, model: RewardModel | None, device: str = "cpu"
    ) -> None:
        self.folder = folder
        self.spec = spec
        self.model = model
        self.policies: list[tuple[str, LoadedPolicy, RewardModel]] = []
        if spec.policy and model is not None:
            self.policies.append(("vpl", load_policy(spec.policy, model, device), model))
            if spec.btl_policy:
                btl_model = load_reward_model(
                    spec.btl_reward or read_meta(spec.btl_policy)["reward_path"], device=device
                )
                btl_policy = load_policy(spec.btl_policy, btl_model, device)
                self.policies.append(("btl", btl_policy, btl_model))

    @property
    def enabled(self) -> bool:
        """Whether the study shows a robot at all (it has a VPL policy)."""
        return bool(self.policies)

    def kinds(self) -> list[str]:
        """The clip kinds this study renders, VPL first."""
        return [kind for kind, _, _ in self.policies]

    def render(self, participant_name: str, participant_id: int, z: np.ndarray) -> dict[str, Any]:
        """Render and write the participant's clips; their names and the episodes' outcome."""
        torch.set_num_threads(1)
        seed = int(np.random.default_rng([self.spec.seed, participant_id, 3]).integers(2**31))
        written: dict[str, Any] = {}
        for kind, policy, model in self.policies:
            env = make_eval_env(
                policy.meta["env_id"], "latent", model, render=True, width=CLIP_WIDTH,
                height=CLIP_HEIGHT, set_down=SetDown.read(policy.meta.get("set_down")),
                env_kwargs=policy_env_kwargs(policy.meta),
            )  # fmt: skip
            env.unwrapped.show_marker = False  # a person's goal is not known: draw none
            try:
                latent = z if kind == "vpl" else None
                episode = run_episode(env, policy.act, None, latent, seed=seed, render=True)
            finally:
                env.close()
            frames = episode.frames + [episode.frames[-1]] * int(HOLD_SECONDS * self.spec.fps)
            name = robot_clip_name(participant_name, kind)
            write_webm(frames, self.folder / ROBOT_DIR / name, self.spec.fps)
            shown = self.folder / ROBOT_DIR / shown_name(name)
            names = np.asarray(list(env.unwrapped.feature_names))
            with atomic_path(shown) as temp, open(temp, "wb") as handle:
                np.savez(handle, features=episode.features, feature_names=names)
            written[kind] = name
        return {"clips": written, "z": [round(float(v), 4) for v in z], "seed": seed}


def shown_name(clip: str) -> str:
    """The file beside a robot clip holding what it shows: the episode's features per state
    (for a synthetic participant's eyes and for checks; never served)."""
    return clip.removesuffix(".webm") + ".shown.npz"


def robot_json(result: dict[str, Any]) -> str:
    """The robots table's ``z`` column: the rendered result as JSON."""
    return json.dumps(result)
