# Two entry points that work on a fresh machine: `make demo` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
# A CPU build of torch: an unpinned `torch` would pull a multi-GB CUDA build on a machine without one.
TORCH_CPU ?= torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: setup tools demo test lint bench clean

setup: $(STAMP)

# tests/deploy run real tools (helm, prometheus, promtool, hadolint, terraform, checkov): one idempotent installer.
tools: setup
	bash deploy/tools/install.sh $(VENV)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_CPU)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The handbook → chunks → MiniLM vectors → LanceDB, then a question answered within 200 tokens.
demo: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/sie run examples/ingest-docs-lancedb/pipeline.yaml
	HF_HUB_OFFLINE=1 $(VENV)/bin/sie query examples/ingest-docs-lancedb/query.yaml "How many vacation days can I carry over?"

test: setup tools
	$(VENV)/bin/ruff check .
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	HF_HUB_OFFLINE=1 $(PY) bench/encode_cpu.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
