"""The battery every registered robopref env must pass (the Gymnasium test habits).

Parametrized over ``robopref.ENV_IDS``: a task added there is tested here with no edit.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robopref
from robopref.envs import sample_goal
from robopref.tasks import scripted_policy

ENV_IDS = list(robopref.ENV_IDS)
CAMERAS = ("front", "top", "side")

# (obs, reward, terminated, truncated, info); reward None marks the result of a reset.
Step = tuple[np.ndarray, float | None, bool, bool, dict[str, Any]]


def some_goal(env_id: str, seed: int = 0) -> Any:
    """A goal drawn from the task's ``goal_space``."""
    env = gym.make(env_id)
    goal = sample_goal(env.unwrapped.goal_space, np.random.default_rng(seed))
    env.close()
    return goal


def noisy_rollout(env: gym.Env, seed: int, goal: Any, steps: int) -> list[Step]:
    """Reset with ``seed`` and run a noisy scripted expert (rich contacts, grasps, releases)."""
    policy = scripted_policy(env, goal, noise=0.4, seed=seed)
    obs, info = env.reset(seed=seed)
    out: list[Step] = [(obs, None, False, False, info)]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        out.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            obs, info = env.reset()
            out.append((obs, None, False, False, info))
    return out


def assert_same_info(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Infos are equal key by key, arrays bit for bit."""
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            assert a[key] == b[key], key


def assert_same_steps(a: list[Step], b: list[Step]) -> None:
    """Two rollouts are identical: observations, rewards, ends and infos."""
    assert len(a) == len(b)
    for i, (step_a, step_b) in enumerate(zip(a, b, strict=True)):
        np.testing.assert_array_equal(step_a[0], step_b[0], err_msg=f"obs at step {i}")
        assert step_a[1:4] == step_b[1:4], f"reward/terminated/truncated at step {i}"
        assert_same_info(step_a[4], step_b[4])


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("with_goal", [True, False], ids=["oracle", "no_goal"])
def test_check_env_passes_without_warnings(env_id: str, with_goal: bool) -> None:
    goal = some_goal(env_id) if with_goal else None
    env = gym.make(env_id, goal=goal, render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_actions_give_identical_rollouts(env_id: str) -> None:
    goal = some_goal(env_id)
    episode_steps = robopref.ENV_IDS[env_id].max_episode_steps
    runs = [noisy_rollout(gym.make(env_id, goal=goal), 3, goal, episode_steps + 15) for _ in "ab"]
    assert_same_steps(*runs)
    # The episode ends by truncation at the registered length, and only there.
    truncated_at = [i for i, step in enumerate(runs[0]) if step[3]]
    assert truncated_at == [episode_steps]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickled_env_continues_identically(env_id: str) -> None:
    goal = some_goal(env_id)
    env = gym.make(env_id, goal=goal).unwrapped
    policy = scripted_policy(env, goal, noise=0.3, seed=1)
    obs, _ = env.reset(seed=5)
    for _ in range(15):
        obs, *_ = env.step(policy(obs))
    clone = pickle.loads(pickle.dumps(env))
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, size=(30, 4)).astype(np.float32)
    for action in actions:
        a, b = env.step(action), clone.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]
        assert_same_info(a[4], b[4])
    # The generator travels too: the next unseeded reset draws the same initial state.
    np.testing.assert_array_equal(env.reset()[0], clone.reset()[0])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_initial_state_is_randomized_across_seeds(env_id: str) -> None:
    env = gym.make(env_id)
    first = [env.reset(seed=seed)[0] for seed in range(5)]
    again = [env.reset(seed=seed)[0] for seed in range(5)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    distinct = {tuple(obs.round(4)) for obs in first}
    assert len(distinct) == 5, "different seeds must give different initial states"
    for obs in first:
        assert env.observation_space.contains(obs)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reward_terms_sum_to_the_reward(env_id: str) -> None:
    goal = some_goal(env_id)
    env = gym.make(env_id, goal=goal)
    steps = noisy_rollout(env, 7, goal, robopref.ENV_IDS[env_id].max_episode_steps)
    feature_names = env.unwrapped.feature_names
    nonzero_terms: set[str] = set()
    for _, reward, _, _, info in steps:
        if reward is None:
            continue
        terms = info["reward_terms"]
        assert reward == pytest.approx(sum(terms.values()), abs=1e-9)
        assert isinstance(info["is_success"], bool)
        assert info["features"].dtype == np.float32
        assert info["features"].shape == (len(feature_names),)
        nonzero_terms |= {name for name, value in terms.items() if value != 0.0}
    assert len(nonzero_terms) >= 2, f"the reward must have active terms, got {nonzero_terms}"

    no_goal = gym.make(env_id)
    for _, reward, _, _, info in noisy_rollout(no_goal, 7, goal, 20)[1:]:
        assert reward == 0.0
        assert "reward_terms" not in info and "is_success" not in info
        assert info["features"].shape == (len(feature_names),)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_goal_never_changes_the_observations(env_id: str) -> None:
    space = gym.make(env_id).unwrapped.goal_space
    rng = np.random.default_rng(11)
    goals = [sample_goal(space, rng) for _ in range(8)]
    goal_a = goals[0]
    goal_b = next(g for g in goals[1:] if not np.array_equal(g, goal_a))
    # The actions follow goal A in every env, so the rollouts can only differ by the goal.
    runs = []
    for goal in (goal_a, goal_b, None):
        env = gym.make(env_id, goal=goal)
        policy = scripted_policy(env, goal_a, noise=0.2, seed=2)
        obs, _ = env.reset(seed=4)
        run = [(obs, 0.0)]
        for _ in range(40):
            obs, reward, _, _, info = env.step(policy(obs))
            run.append((obs, reward, info["features"]))
        runs.append(run)
    for other in runs[1:]:
        for step_a, step_other in zip(runs[0], other, strict=True):
            np.testing.assert_array_equal(step_a[0], step_other[0])
    rewards = [[step[1] for step in run] for run in runs]
    assert rewards[0] != rewards[1], "the goal must change the reward"
    assert set(rewards[2]) == {0.0}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_scripted_expert_succeeds(env_id: str) -> None:
    env = gym.make(env_id)
    rng = np.random.default_rng(2024)
    episodes, successes = 20, 0
    for episode in range(episodes):
        goal = sample_goal(env.unwrapped.goal_space, rng)
        obs, _ = env.reset(seed=episode, options={"goal": goal})
        policy = scripted_policy(env, goal)
        truncated = terminated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(policy(obs))
        successes += bool(info["is_success"])
    assert successes / episodes >= 0.95, f"expert succeeded in {successes}/{episodes}"


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("camera", CAMERAS)
def test_rendered_frames_have_shape_dtype_and_content(env_id: str, camera: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array", camera=camera, width=160, height=120)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (120, 160, 3)
    assert frame.dtype == np.uint8
    assert frame.std() > 10.0, "the frame is blank"
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 50, "the frame has too few colours"
    # The goal marker is drawn for the viewer only: it changes the frame, not the state.
    obs_before = env.unwrapped._observation()
    env.unwrapped.marker = some_goal(env_id)
    with_marker = env.render()
    assert np.any(with_marker != frame)
    np.testing.assert_array_equal(env.unwrapped._observation(), obs_before)
    env.close()


def test_default_frame_size_is_320_by_240() -> None:
    env = gym.make(ENV_IDS[0], render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render().shape == (240, 320, 3)
    env.close()


def run_python(code: str, tmp_path, **env_vars: str | None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, in an empty folder, with changed env vars."""
    env = dict(os.environ)
    for key, value in env_vars.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_module_colon_id_works_in_code_that_never_imported_robopref(tmp_path) -> None:
    code = f"""
        import sys
        import gymnasium as gym
        assert "robopref" not in sys.modules
        for env_id in {ENV_IDS!r}:
            env = gym.make("robopref:" + env_id)
            obs, info = env.reset(seed=0)
            env.step(env.action_space.sample())
            print(env_id, obs.shape)
        assert "robopref" in sys.modules
    """
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    for env_id in ENV_IDS:
        assert env_id in result.stdout


def test_import_robopref_registers_every_id(tmp_path) -> None:
    code = f"""
        import gymnasium as gym
        import robopref
        for env_id in {ENV_IDS!r}:
            env = gym.make(env_id, goal="random")
            env.reset(seed=0)
            print(env_id, env.spec.max_episode_steps)
    """
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    for env_id, spec in robopref.ENV_IDS.items():
        assert f"{env_id} {spec.max_episode_steps}" in result.stdout


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unknown_kwarg_names_the_valid_ones(env_id: str) -> None:
    with pytest.raises(TypeError, match="colour") as error:
        gym.make(env_id, colour="red")
    for valid in ("goal", "render_mode", "camera", "width", "height"):
        assert valid in str(error.value)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unknown_kwarg_uses_pythons_own_wording_then_the_fix(env_id: str) -> None:
    """TorchRL's GymEnv matches "got an unexpected keyword argument 'frameskip'"."""
    name = type(gym.make(env_id).unwrapped).__name__
    with pytest.raises(TypeError) as error:
        gym.make(env_id, x=1)
    message = str(error.value)
    assert message.startswith(f"{name}.__init__() got an unexpected keyword argument 'x'")
    assert "Valid keyword arguments" in message and "Fix the gym.make" in message
    with pytest.raises(TypeError, match="unexpected keyword argument 'frameskip'"):
        gym.make(env_id, frameskip=4)


def test_unknown_kwarg_suggests_the_close_name() -> None:
    with pytest.raises(TypeError, match=r"'n_zone' \(did you mean 'n_zones'\?\)"):
        gym.make("robopref/BlockSort-v0", n_zone=3)


def test_plate_goal_off_the_table_is_refused() -> None:
    with pytest.raises(ValueError, match="off the table"):
        gym.make("robopref/PlatePlacement-v0", goal=(0.6, 0.0))
    with pytest.raises(ValueError, match=r"\(x, y\)"):
        gym.make("robopref/PlatePlacement-v0", goal=(0.1, 0.1, 0.1))
    env = gym.make("robopref/PlatePlacement-v0")
    with pytest.raises(ValueError, match="off the table"):
        env.reset(seed=0, options={"goal": (0.0, -0.9)})
    with pytest.raises(ValueError, match="off the table"):
        scripted_policy(env, (1.0, 1.0))


def test_block_sort_unknown_zone_and_zone_count_are_refused() -> None:
    with pytest.raises(ValueError, match="not a zone"):
        gym.make("robopref/BlockSort-v0", goal=2)
    with pytest.raises(ValueError, match="zone index"):
        gym.make("robopref/BlockSort-v0", goal="left")
    with pytest.raises(ValueError, match="not a zone"):
        gym.make("robopref/BlockSort-v0").reset(seed=0, options={"goal": 1.5})
    with pytest.raises(ValueError, match=r"n_zones=7 is not supported: use one of \[2, 3, 4\]"):
        gym.make("robopref/BlockSort-v0", n_zones=7)
    for bad in ([3], True, "3", 3.0):
        with pytest.raises(ValueError, match="is not a whole number"):
            gym.make("robopref/BlockSort-v0", n_zones=bad)
    env = gym.make("robopref/BlockSort-v0", n_zones=4, goal=3)
    assert env.unwrapped.goal_space.n == 4
    assert len(env.reset(seed=0)[1]["features"]) == len(env.unwrapped.feature_names)


def test_unknown_camera_lists_the_cameras() -> None:
    with pytest.raises(ValueError, match="front"):
        gym.make(ENV_IDS[0], camera="ceiling")


def test_a_bogus_gl_backend_only_stops_rendering(tmp_path) -> None:
    code = """
        import gymnasium as gym
        import numpy as np
        env = gym.make("robopref:robopref/BlockSort-v0", goal=1, render_mode="rgb_array")
        env.reset(seed=0)
        env.step(np.zeros(4, np.float32))
        print("physics ran")
        try:
            env.render()
        except RuntimeError as error:
            print("ERROR", error)
    """
    result = run_python(code, tmp_path, MUJOCO_GL="bogus")
    assert result.returncode == 0, result.stderr
    assert "physics ran" in result.stdout
    assert "ERROR Rendering is unavailable: MUJOCO_GL='bogus' is not a rendering backend" in (
        result.stdout
    )
    assert "MUJOCO_GL=egl" in result.stdout


def test_backend_without_a_display_names_the_values_to_try(tmp_path) -> None:
    code = """
        import gymnasium as gym
        import robopref
        env = gym.make("robopref/PlatePlacement-v0", render_mode="rgb_array")
        env.reset(seed=0)
        try:
            env.render()
        except RuntimeError as error:
            print("ERROR", error)
    """
    result = run_python(code, tmp_path, MUJOCO_GL="glfw", DISPLAY=None, WAYLAND_DISPLAY=None)
    assert result.returncode == 0, result.stderr
    assert "ERROR Rendering failed with MUJOCO_GL=glfw" in result.stdout
    assert "MUJOCO_GL=egl" in result.stdout


@pytest.mark.parametrize(
    ("env_id", "goal"), [("robopref/PlatePlacement-v0", (0.2, 0.15)), ("robopref/BlockSort-v0", 1)]
)
def test_set_down_on_contact_lets_go_of_a_lifted_object_resting_on_the_table(env_id, goal):
    from robopref.envs.wrappers import SetDownOnContact

    def final_success(set_down: bool) -> bool:
        env = gym.make(env_id, goal=goal)
        env = SetDownOnContact(env) if set_down else env
        expert = scripted_policy(env, goal)
        obs, info = env.reset(seed=1)
        for _ in range(env.spec.max_episode_steps if env.spec else 80):
            action = expert(obs)
            action[3] = 1.0  # never let go itself, and keep asking for suction
            obs, _, _, _, info = env.step(action)
        env.close()
        return bool(info["is_success"])

    assert final_success(True)
    assert not final_success(False)


@pytest.mark.parametrize(
    ("env_id", "goal"), [("robopref/PlatePlacement-v0", (0.1, 0.1)), ("robopref/BlockSort-v0", 1)]
)
def test_a_let_go_request_places_the_lifted_object_below_where_it_is_held(env_id, goal):
    """With the place primitive, asking to let go high above the table lowers the object
    straight down and sets it down gently there; without it the request is the env's: the
    plate's interlock keeps it held up there, the block is dropped."""
    from robopref.envs.wrappers import SetDownOnContact
    from robopref.tasks import task_spec

    def let_go_high(place: bool) -> np.ndarray:
        env = SetDownOnContact(gym.make(env_id, goal=goal), place=place)
        task = env.unwrapped
        col = {n: i for i, n in enumerate(task.feature_names)}
        point = task_spec(env_id).goal_point(task, task.validate_goal(goal))
        expert = scripted_policy(env, goal)
        obs, info = env.reset(seed=2)
        asked_at = None
        for _ in range(env.spec.max_episode_steps if env.spec else 80):
            action = expert(obs)
            f = task.features()
            near = np.hypot(f[col["x"]] - point[0], f[col["y"]] - point[1]) < 0.03
            if asked_at is None and task.held and near and f[col["height"]] > 0.05:
                asked_at = f[[col["x"], col["y"]]].copy()
            if asked_at is not None:
                action = np.array([0.0, 0.0, 0.0, -1.0], np.float32)  # let go, stay put
            obs, _, _, _, info = env.step(action)
        env.close()
        assert asked_at is not None, "the expert never carried the object high over its point"
        f = info["features"]
        return np.array([f[col["held"]], f[col["height"]], f[col["drop_height"]],
                         np.hypot(*(f[[col["x"], col["y"]]] - asked_at))])  # fmt: skip

    held, height, drop, moved = let_go_high(True)
    assert held == 0 and abs(height) < 0.004 and drop < 0.01 and moved < 0.01
    held, height, drop, _ = let_go_high(False)
    assert (held == 1 and height > 0.05) or drop > 0.04


def test_with_set_down_rebuilds_each_recorded_primitive() -> None:
    from robopref.envs.wrappers import SetDown, SetDownOnContact, with_set_down

    def make():
        return gym.make("robopref/PlatePlacement-v0")

    assert not isinstance(with_set_down(make(), False), SetDownOnContact)
    assert with_set_down(make(), True).place is False  # recorded before the place existed
    assert with_set_down(make(), "place").place is True
    assert not isinstance(with_set_down(make(), SetDown.OFF), SetDownOnContact)
    assert with_set_down(make(), SetDown.CONTACT).place is False
    assert with_set_down(make(), SetDown.PLACE).place is True
    for member in SetDown:  # meta.json keeps the values it always stored
        assert SetDown.read(member.stored) is member
    assert [m.stored for m in SetDown] == [False, True, "place"]
    with pytest.raises(ValueError, match="not a set-down primitive"):
        with_set_down(make(), "drop")
