# The README's two commands: `make run` (set up, then the main job) and `make test`.
# Both create .venv on first use and reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch this project is developed against; set TORCH_SPEC= to keep
# whatever torch the environment already has (e.g. a CUDA build).
TORCH_SPEC ?= torch==2.13.0

.PHONY: run test lint setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"; fi
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

# The whole pipeline in a 12-minute time box, ending in runs/quickstart/index.html; run again to continue it.
run: setup
	$(BIN)/gcgan doctor
	$(BIN)/gcgan quickstart --outdir runs/quickstart

test: setup
	$(BIN)/python -m pytest -q

# ruff: the lint set and the formatter's check (configuration in pyproject.toml); CI runs it before the tests.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
