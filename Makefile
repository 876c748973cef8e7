# Two commands do all the set-up on a fresh machine: `make repro` and `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: repro test venv clean-venv

venv: $(STAMP)

# (Re)create the environment whenever requirements.txt changes.
$(STAMP): requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

repro: $(STAMP)
	dvc repro

test: $(STAMP)
	python -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
