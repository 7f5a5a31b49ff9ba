# Every target creates and uses .venv; a fresh machine needs only python3 (3.11 or 3.12).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: install demo test test-expensive bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch (on local disk here) first: an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0 
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/robopref demo --video videos/personalized.mp4 --overwrite
	$(VENV)/bin/robopref render --env robopref/PlatePlacement-v0 --goal 0.2,-0.15 --camera side --episodes 2 --out videos/plate_placement.mp4 --overwrite
	$(VENV)/bin/robopref render --env robopref/BlockSort-v0 --goal 1 --episodes 2 --out videos/block_sort.mp4 --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

test-expensive: $(STAMP)
	$(PY) -m pytest -q -m expensive

bench: $(STAMP)
	$(PY) benchmarks/env_throughput.py --json runs/bench/env_throughput.json
	$(PY) benchmarks/oracle_learning.py --seed 0 1 2 --json runs/bench/oracle_learning.json
	$(PY) benchmarks/collect_throughput.py --json runs/bench/collect_throughput.json
	$(PY) benchmarks/reward_speed.py --json runs/bench/reward_speed.json
	$(PY) benchmarks/policy_throughput.py --json runs/bench/policy_throughput.json
	$(PY) benchmarks/ppo_speed.py --json runs/bench/ppo_speed.json

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs build *.egg-info
