# Quick start:   make demo    (the whole recipe on the built-in corpus)
#                make test    (installs if needed, then runs the test suite)
#                make test-long (the minutes-long tests: recipe stages killed and rerun)
#                make test-slurm (the recipe through the Slurm backend on a Slurm cluster on this machine)
#                make mediapipe-env / test-mediapipe (automatic face landmarks for --roi_method mediapipe)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := ffmpeg espeak-ng libespeak-ng1 sctk
# only for make test-slurm (a Slurm cluster on this machine, started and stopped by the tests)
SLURM_DEBIAN_PACKAGES := slurm-wlm munge
PYTEST_ARGS ?=
# Free space the install needs where .venv lives (torch 2.9.1 on PyPI is a CUDA build: ~7.8 GiB).
INSTALL_MIN_FREE_GIB ?= 8
# MediaPipe (--roi_method mediapipe) in its own environment: mediapipe 0.10.21 (the last release whose
# wheel bundles the face detector and face-mesh models) needs numpy<2, espnet needs numpy>=2.
# mediapipe is installed without its declared dependencies: opencv-contrib-python (we pin the headless
# build instead; two OpenCV packages would clash), jax/jaxlib, sounddevice, sentencepiece (unused by
# the face mesh); the rest is listed here.
MP_VENV ?= .venv-mediapipe
MP_PY := $(MP_VENV)/bin/python
MP_STAMP := $(MP_VENV)/.installed
MP_DEPS := "numpy<2" "opencv-python-headless==4.11.0.86" "protobuf>=4.25.3,<5" "absl-py" "attrs>=19.1.0" "flatbuffers>=2.0" "matplotlib"

.PHONY: install sysdeps test test-long demo clean-venv mediapipe-env test-mediapipe

install: sysdeps $(STAMP)

# Installs the Debian packages $(1) when missing (as root), else prints the command to run.
define install_debian_packages
	@missing=""; \
	for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "Missing Debian packages:$$missing. Run: sudo apt-get install -y$$missing" >&2; exit 1; \
	  fi; \
	fi
endef

# The Debian packages the project needs.
sysdeps:
	$(call install_debian_packages,$(DEBIAN_PACKAGES))

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

# Tests marked `slurm` (skipped by `make test`): a Slurm cluster on 127.0.0.1 (munged, slurmctld
# and two slurmd named after this host and localhost, started in a temporary folder, stopped at the
# end), utils/run_slurm.sh, and recipe stages 1-13 on the tiny built-in corpus through
# SMILE_CMD_BACKEND=slurm with 2-process gloo DDP training over srun, then stage 11 on two nodes.
# Needs root for slurmd (and for the apt install).
.PHONY: sysdeps-slurm test-slurm
sysdeps-slurm:
	$(call install_debian_packages,$(SLURM_DEBIAN_PACKAGES))

test-slurm: install sysdeps-slurm
	SMILE_SLURM_TESTS=1 $(PY) -m pytest test/test_slurm.py -q $(PYTEST_ARGS)

# The whole recipe on the built-in corpus (default size: about 1.2 h of training speech).
demo: install
	cd egs2/lrs3_smile/avsr1 && ./run.sh --stage 1 --stop_stage 13 --local_data_opts "--train_subset full"
	@cat egs2/lrs3_smile/avsr1/RESULTS.md

clean-venv:
	rm -rf $(VENV) $(MP_VENV)

mediapipe-env: $(MP_STAMP)

$(MP_STAMP):
	@free=$$(df -Pk . | awk 'NR == 2 {print int($$4 / 1048576)}'); \
	if [ "$$free" -lt 1 ]; then echo "make mediapipe-env: $$free GiB free, it needs about 0.5 GiB" >&2; exit 1; fi
	test -x $(MP_PY) || $(PYTHON) -m venv $(MP_VENV)
	$(MP_PY) -m pip install -q --no-cache-dir $(MP_DEPS)
	$(MP_PY) -m pip install -q --no-cache-dir --no-deps "mediapipe==0.10.21"
	$(MP_PY) -c "import numpy, cv2; from mediapipe.python.solutions.face_mesh import FaceMesh; FaceMesh(static_image_mode=True).close(); assert numpy.__version__ < '2'"
	touch $(MP_STAMP)

# The mediapipe landmark tests (skipped by `make test` unless the environment exists).
test-mediapipe: install mediapipe-env
	SMILE_MEDIAPIPE_PYTHON=$(abspath $(MP_PY)) $(PY) -m pytest test/test_roi.py -q -k mediapipe $(PYTEST_ARGS)
