"""Wrappers over the tabletop tasks."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import gymnasium as gym
import numpy as np

from robopref.envs.tabletop import RESTING_HEIGHT


class GoalObservation(gym.ObservationWrapper):
    """Append the env's current goal to the observation: the oracle's view of the task.

    Appended: the goal (a Box goal as is, a Discrete goal, a zone index, as a one-hot
    vector), then the vector from the (active) object to the goal's table point for it
    (2). The relative
    vector is redundant but makes goal-conditioned RL far easier to learn. Use it with
    ``goal="random"`` to train an oracle policy over all goals.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.unwrapped.goal_space
        if isinstance(space, gym.spaces.Discrete):
            self._goal_size = int(space.n)
        elif isinstance(space, gym.spaces.Box):
            self._goal_size = int(np.prod(space.shape))
        else:
            raise TypeError(f"GoalObservation cannot encode goals of {space}")
        base = env.observation_space
        self.observation_space = gym.spaces.Box(
            -np.inf, np.inf, shape=(base.shape[0] + self._goal_size + 2,), dtype=np.float32
        )

    def encode_goal(self, goal: Any) -> np.ndarray:
        """The goal as the float32 vector appended to observations."""
        if goal is None:
            raise ValueError("GoalObservation needs an env with a goal: pass goal=... or 'random'")
        if isinstance(self.env.unwrapped.goal_space, gym.spaces.Discrete):
            one_hot = np.zeros(self._goal_size, dtype=np.float32)
            one_hot[int(goal)] = 1.0
            return one_hot
        return np.asarray(goal, dtype=np.float32).reshape(-1)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """``observation`` followed by the encoded goal."""
        task = self.env.unwrapped
        goal = self.encode_goal(task.goal)
        to_goal = task.goal_xy(task.goal) - task.active_xy()
        return np.concatenate([observation, goal, to_goal]).astype(np.float32, copy=False)


#: an object held higher than this (m, its bottom above the table) counts as lifted.
LIFTED_HEIGHT = 0.02
#: after a set-down the suction stays off until the tip is this far above the object (m).
RETREAT_HEIGHT = 0.05


class SetDownOnContact(gym.Wrapper):
    """A set-down primitive: the suction lets go once a lifted object rests on the table,
    and a request to let go of a lifted object lowers it straight down first.

    While the object is held, has been lifted more than ``LIFTED_HEIGHT`` since it was
    taken, and its bottom is back within ``RESTING_HEIGHT`` of the table top, the action's
    grip is turned off (``grip = -1``), and it stays off until the suction tip has moved
    ``RETREAT_HEIGHT`` above the object (so that a policy that keeps asking for suction
    does not take the object straight back; it can still lift the hand and take it again).

    With ``place`` (the default), asking to let go (``grip < 0``) while holding a lifted
    object starts a *place*: the hand goes straight down (``[0, 0, -1]``, suction on) until
    the object rests, which lets go as above; a place that stops descending (the object is
    on something, or the hand at its lowest) lets go where it is. Without ``place`` (the
    contact-only primitive, ``place=False``) a let-go request passes to the env, whose
    interlock refuses it above ``RELEASE_HEIGHT`` and drops the object below it.
    Otherwise actions pass unchanged.

    Why: learned rewards rank "set down at the goal" barely above "held at the goal" (few
    answers compare the two, and nothing fixes the size of the gap), so a policy that must
    lower the object itself the last few centimetres to the table stalls above it, held
    (measured in the loop: 3-6 cm up, at the right spot). With this primitive it decides
    *where* to set the object down and *when*, one action, which is what users disagree
    about (as with the pick-and-place primitives of VPL's Ravens tasks).
    """

    #: a place that lowers the object less than this in one step has stopped descending (m)
    STALLED = 0.001

    def __init__(self, env: gym.Env, place: bool = True) -> None:
        super().__init__(env)
        self.place = place
        self._lifted = False
        self._set_down = False
        self._placing = False
        self._last_height = np.inf

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env and the primitive's state."""
        out = self.env.reset(seed=seed, options=options)
        self._set_down = self._placing = False
        self._last_height = np.inf
        self._update()
        return out

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Place, or let go if the lifted object rests on the table, then step."""
        task = self.env.unwrapped
        height = task.object_bottom_height()
        if self.place and self._lifted and task.held and not self._set_down and action[3] < 0:
            self._placing = True
        if self._placing and (not task.held or self._last_height - height < self.STALLED):
            self._placing, self._set_down = False, task.held  # resting, or stalled: let go
        if self._lifted and task.held and height < RESTING_HEIGHT:
            self._placing, self._set_down = False, True
        if self._set_down and not task.held and task.tip_above_object() > RETREAT_HEIGHT:
            self._set_down = False
        if self._placing:
            action = np.array([0.0, 0.0, -1.0, 1.0], dtype=np.float32)
            self._last_height = height
        elif self._set_down:
            action = np.array(action, dtype=np.float32, copy=True)
            action[3] = -1.0
        if not self._placing:
            self._last_height = np.inf
        out = self.env.step(action)
        self._update()
        return out

    def _update(self) -> None:
        task = self.env.unwrapped
        if not task.held:
            self._lifted = False
        elif task.object_bottom_height() > LIFTED_HEIGHT:
            self._lifted = True


class SetDown(StrEnum):
    """The set-down primitive a policy trains and runs under (its ``meta["set_down"]``).

    ``meta.json`` stores it as it always has (:meth:`read` and :attr:`stored` convert):
    ``false`` for none, ``true`` for the contact-only primitive of policies trained before
    the place existed, ``"place"`` for the current one (contact and place).
    """

    OFF = "off"  # no primitive: actions pass to the env unchanged
    CONTACT = "contact"  # SetDownOnContact(place=False)
    PLACE = "place"  # SetDownOnContact(place=True)

    @classmethod
    def read(cls, stored: SetDown | bool | str | None) -> SetDown:
        """The primitive a stored ``meta["set_down"]`` names (None, as an absent key: off)."""
        if isinstance(stored, cls):
            return stored
        if stored is False or stored is None:
            return cls.OFF
        if stored is True:
            return cls.CONTACT
        if stored == cls.PLACE.value:
            return cls.PLACE
        raise ValueError(
            f"set_down={stored!r} is not a set-down primitive: use False, True or "
            f"{cls.PLACE.value!r}"
        )

    @property
    def stored(self) -> bool | str:
        """The value ``meta.json`` records for this primitive (``false``, ``true``, ``"place"``)."""
        if self is SetDown.OFF:
            return False
        return True if self is SetDown.CONTACT else self.value


def with_set_down(env: gym.Env, set_down: SetDown | bool | str | None) -> gym.Env:
    """``env`` under the set-down primitive ``set_down`` (a :class:`SetDown`, or the value
    ``meta.json`` stores for it) names: none, the contact-only one, or contact and place
    (:class:`SetDownOnContact`).

    The primitive belongs to the 4-D suction-tip action; an env with another action (the
    place interface of TableSetting, which sets every object down itself) is returned as is.
    """
    if env.action_space.shape != (4,):
        return env
    primitive = SetDown.read(set_down)
    if primitive is SetDown.OFF:
        return env
    return SetDownOnContact(env, place=primitive is SetDown.PLACE)
