# AdLift developer entry points. Quick start: `make demo`, `make test`.
#
# torch is installed first, pinned to the 2.13.0 CPU wheel these machines carry locally
# (any other version pulls gigabytes of CUDA packages); pyproject only asks for torch>=2.4.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.adlift-installed
DEMO_OUT ?= outputs/demo
PYTEST_ARGS ?=

.PHONY: demo test install clean scenes bench-render help

help:
	@echo "make demo        set up .venv and run the demo on a bundled scene (offline)"
	@echo "make test        set up .venv and run every test"
	@echo "make scenes      regenerate the bundled scenes (byte-identical)"
	@echo "make bench-render  run the renderer benchmark (writes benchmarks/results/*.json)"
	@echo "make clean       remove .venv and outputs/"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet $(TORCH_SPEC)
	$(PIP) install --quiet -e ".[test,scenes]"
	touch $(STAMP)

install: $(STAMP)

# Until protection lands, the demo renders the bundled bust and edits its novel views with the
# tiny offline InstructPix2Pix (an UNTRAINED test model: its edits are noise, not a real edit).
demo: $(STAMP)
	$(VENV)/bin/adlift info scenes/bust/scene.ply
	$(VENV)/bin/adlift render scenes/bust/scene.ply --cameras scenes/bust/transforms.json --out $(DEMO_OUT)/render
	HF_HUB_OFFLINE=1 $(VENV)/bin/adlift edit scenes/bust/scene.ply --instruction "turn her into a clown" \
		--editor tiny --mode 2d --cameras scenes/bust/transforms.json --split novel --out $(DEMO_OUT)/edit2d
	@echo "Demo outputs: $(DEMO_OUT)/render/contact_sheet.png and $(DEMO_OUT)/edit2d/before_after.png"

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

scenes: $(STAMP)
	$(PY) scenes/generate.py

bench-render: $(STAMP)
	$(PY) benchmarks/render.py

clean:
	rm -rf $(VENV) outputs
