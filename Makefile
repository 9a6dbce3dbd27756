# The README's two commands: `make run` (set up, then the main job) and `make test`.
# Both create .venv on first use and reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch this project is developed against; set TORCH_SPEC= to keep
# whatever torch the environment already has (e.g. a CUDA build).
TORCH_SPEC ?= torch==2.13.0

.PHONY: run test setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"; fi
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/gcgan doctor
	$(BIN)/gcgan segment synthetic --n 2000 --outdir runs/quickstart/prep
	$(BIN)/gcgan pack --data runs/quickstart/prep --outdir runs/quickstart/db --overwrite
	rm -rf runs/quickstart/train
	$(BIN)/gcgan train --data runs/quickstart/db --outdir runs/quickstart/train --preset small --batch 8 \
		--mirror --iters 200 --log-every 50 --viz-every 100 --save-every 100

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
