# Quick start:   make demo    (the whole recipe on the built-in corpus)
#                make test    (installs if needed, then runs the test suite)
#                make test-long (the minutes-long tests: recipe stages killed and rerun)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := ffmpeg espeak-ng libespeak-ng1 sctk
PYTEST_ARGS ?=
# Free space the install needs where .venv lives (torch 2.9.1 on PyPI is a CUDA build: ~7.8 GiB).
INSTALL_MIN_FREE_GIB ?= 8

.PHONY: install sysdeps test test-long demo clean-venv

install: sysdeps $(STAMP)

# Installs the Debian packages the project needs when missing (as root), else prints the command to run.
sysdeps:
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "Missing Debian packages:$$missing. Run: sudo apt-get install -y$$missing" >&2; exit 1; \
	  fi; \
	fi

# The virtual environment lives inside the repository; the package is installed editable into it.
$(STAMP): setup.py
	@free=$$(df -Pk . | awk 'NR == 2 {print int($$4 / 1048576)}'); \
	if ! $(PY) -c "import torch, torchaudio" 2>/dev/null && [ "$$free" -lt $(INSTALL_MIN_FREE_GIB) ]; then \
	  echo "make install: $$free GiB free in $$(pwd), the environment needs about $(INSTALL_MIN_FREE_GIB) GiB (torch with its CUDA libraries)" >&2; exit 1; \
	fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "pip<25" wheel  # pip 25+ rejects a direct-URL extra in an ESPnet dependency (ci_sdr)
	$(PY) -m pip install -q --no-cache-dir -e '.[test]'  # no wheel cache: it would double the disk use
	# the nltk data g2p_en asks for at import must resolve locally (no download attempt)
	$(PY) -c "import espnet2_smile, nltk; [nltk.data.find(p) for p in ('taggers/averaged_perceptron_tagger_eng.zip', 'corpora/cmudict.zip')]"
	$(PY) -c "import espnet2_smile.tasks.avsr" 2>&1 | { ! grep -i "nltk_data"; }
	touch $(STAMP)

test: install
	$(PY) -m pytest test -q $(PYTEST_ARGS)

# Tests marked `long` (skipped by `make test`): kill -9 during recipe stages 1, 11 and 12
# and check the rerun; a training run on a corrupt ark entry.
test-long: install
	SMILE_LONG_TESTS=1 $(PY) -m pytest test -q -m long $(PYTEST_ARGS)

# The whole recipe on the built-in corpus (default size: about 1.2 h of training speech).
demo: install
	cd egs2/lrs3_smile/avsr1 && ./run.sh --stage 1 --stop_stage 13 --local_data_opts "--train_subset full"
	@cat egs2/lrs3_smile/avsr1/RESULTS.md

clean-venv:
	rm -rf $(VENV)
