# Two entry points that work on a fresh machine: `make demo` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
# A CPU build of torch: an unpinned `torch` would pull a multi-GB CUDA build on a machine without one.
TORCH_CPU ?= torch==2.13.0
STAMP   := $(VENV)/.installed
# The published client libraries tests/clients drives (TEI, Cohere, OpenAI clients and the frameworks'):
# their own venv, as langchain-huggingface pins huggingface-hub<2 and the main venv has 2.x.
CLIENTS ?= .venv-clients
CLIENTS_STAMP := $(CLIENTS)/.installed
# Superlinked's SIE SDK and its integration packages (tests/superlinked): the SDK needs Python >= 3.12, taken from
# pyenv (PY312); on a machine without it the venv is not built and tests/superlinked is skipped, saying why.
SIE_SDK ?= .venv-sie-sdk
SIE_SDK_STAMP := $(SIE_SDK)/.installed
PY312 ?= $(shell p="$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions/3.12.1/bin/python3.12"; \
                 test -x "$$p" && echo "$$p" || command -v python3.12)

.PHONY: setup tools clients sie-sdk demo test test-image lint bench clean

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

clients: $(CLIENTS_STAMP)

$(CLIENTS_STAMP): tests/clients/requirements.txt
	test -x $(CLIENTS)/bin/python || python3 -m venv $(CLIENTS)
	$(CLIENTS)/bin/python -m pip install -q --upgrade pip
	$(CLIENTS)/bin/python -m pip install -q -r tests/clients/requirements.txt
	touch $(CLIENTS_STAMP)

sie-sdk:
	@if [ -n "$(PY312)" ]; then $(MAKE) --no-print-directory $(SIE_SDK_STAMP); \
	else echo "sie-sdk: no Python 3.12 (pyenv's 3.12.1 or python3.12): tests/superlinked will be skipped"; fi

$(SIE_SDK_STAMP): tests/superlinked/requirements.txt
	test -x $(SIE_SDK)/bin/python || $(PY312) -m venv $(SIE_SDK)
	$(SIE_SDK)/bin/python -m pip install -q --upgrade pip
	$(SIE_SDK)/bin/python -m pip install -q -r tests/superlinked/requirements.txt
	touch $(SIE_SDK_STAMP)

# The handbook → chunks → MiniLM vectors → LanceDB, then a question answered within 200 tokens.
demo: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/sie run examples/ingest-docs-lancedb/pipeline.yaml
	HF_HUB_OFFLINE=1 $(VENV)/bin/sie query examples/ingest-docs-lancedb/query.yaml "How many vacation days can I carry over?"

# The client tests run first: they write tests/clients/results.json and tests/superlinked/results.json, whose
# rendering the README must carry. Without Python 3.12 the main venv's run below skips tests/superlinked, saying why.
test: setup tools clients sie-sdk
	$(VENV)/bin/ruff check .
	SIE_BIN=$(abspath $(VENV))/bin/sie $(CLIENTS)/bin/python -m pytest -q tests/clients --compat-out tests/clients/results.json
	if [ -x $(SIE_SDK)/bin/python ]; then SIE_BIN=$(abspath $(VENV))/bin/sie $(SIE_SDK)/bin/python -m pytest -q \
	  tests/superlinked --compat-out tests/superlinked/results.json; fi
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests --ignore=tests/clients $$(test -x $(SIE_SDK)/bin/python && echo --ignore=tests/superlinked)

# Dockerfile.cpu built with buildah and served with podman (minutes: it installs torch; needs root and
# `apt-get install buildah podman runc debootstrap`). Not part of `make test`.
test-image: setup
	SIE_IMAGE_TEST=1 HF_HUB_OFFLINE=1 $(PY) -m pytest -q -s tests/deploy/test_image_build.py

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	HF_HUB_OFFLINE=1 $(PY) bench/encode_cpu.py

clean:
	rm -rf $(VENV) $(CLIENTS) $(SIE_SDK) .pytest_cache build *.egg-info
