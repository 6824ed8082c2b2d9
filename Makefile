# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Both create the virtual environment in .venv/ (pinned versions from requirements.lock) on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv demo test test-fast lint bench clean browser fonts

# The browser tests (report and web app) drive Debian's chromium through Playwright; Playwright's own
# browser download is never used. Installed with apt-get (as root, or through sudo) when missing.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# Train the default model on the bundled demo data, evaluate it, predict three new photos, export the
# model to TFLite with its parity check, and say where the report is and how to open the web app.
# A second `make demo` makes runs/demo2 (runs are never overwritten); the later steps use the newest.
demo: $(STAMP)
	$(BIN)/imgclf train demo/sign-digits --out runs --name demo
	run=$$(ls -td runs/demo* | head -n 1) && \
	  $(BIN)/imgclf evaluate $$run && \
	  $(BIN)/imgclf predict $$run demo/new-pictures && \
	  $(BIN)/imgclf export $$run --format tflite && \
	  echo && echo "report:  $$run/report.html  (open it in a browser; figures as PNGs beside it)" && \
	  echo "web app: $(BIN)/imgclf serve $$run   then open http://127.0.0.1:8000 (API docs at /docs)"

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

browser: $(CHROMIUM)

# Fonts for class names in any script in the report's figures (imgclf/reporting/style.py): Noto
# for CJK and other scripts, Symbola for emoji. Installed with apt-get when missing, like chromium.
FONTS ?= /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
FONT_PACKAGES := fonts-noto-core fonts-noto-cjk fonts-symbola
$(FONTS):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(FONT_PACKAGES)

fonts: $(FONTS)

# The whole suite, the slow integration test on the shared dataset included (what CI runs), in
# PYTEST_WORKERS processes (pytest-xdist; one test file stays in one process, so its trained runs are shared;
# files start in tests/conftest.py's order, longest first).
PYTEST_WORKERS ?= 3
test: $(STAMP) $(CHROMIUM) $(FONTS) lint
	$(BIN)/python -m pytest -q -rs -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS) tests

# The formatter and the linter (ruff, configured in pyproject.toml): any finding fails `make test`.
LINTED := imgclf tests bench tools
lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

# Everything but the integration test on the shared dataset.
test-fast: $(STAMP) $(CHROMIUM) $(FONTS) lint
	$(BIN)/python -m pytest -q -rs -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not slow" $(PYTEST_ARGS) tests

clean:
	rm -rf $(VENV) runs .pytest_cache
