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

.PHONY: demo test install clean scenes bench-render bench-protect bench-formats train-mini cuda cuda-check chromium splat-transform view viewer-screenshot test-nerfstudio help

help:
	@echo "make demo        set up .venv and run the demo on a bundled scene (offline)"
	@echo "make test        set up .venv and run every test"
	@echo "make test-nerfstudio  nerfstudio plugin + core tests in .venv-nerfstudio (nerfstudio 1.1.5, numpy<2)"
	@echo "make view        serve the browser viewer on the demo output (after make demo)"
	@echo "make scenes      regenerate the bundled scenes (byte-identical)"
	@echo "make bench-render  run the renderer benchmark (writes benchmarks/results/*.json)"
	@echo "make bench-protect run the protection benchmark (cost, and lifted-pgd vs fit2d vs direct)"
	@echo "make bench-formats compare gsply and gaussforge on the web 3DGS formats (needs make splat-transform)"
	@echo "make splat-transform  install PlayCanvas splat-transform (npm) for the web-format tests"
	@echo "make train-mini  retrain the mini InstructPix2Pix on CPU and write its weights into the package"
	@echo "make cuda        build our CUDA rasteriser ahead of time (needs a CUDA GPU and CUDA torch)"
	@echo "make cuda-check  compile-check every cuda/src/*.cu with plain nvcc (sm_90, sm_80); no GPU needed"
	@echo "make clean       remove .venv and outputs/"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet $(TORCH_SPEC)
	$(PIP) install --quiet -e ".[test,scenes]"
	touch $(STAMP)

install: $(STAMP)

# The demo protects the bundled bust against "turn her into a clown" with Lifted PGD and the tiny
# offline InstructPix2Pix (an UNTRAINED test model: it shows the pipeline, not real protection),
# then evaluates it (invisibility, edits of raw vs protected renders, robustness to purification,
# and the removal-attack suite run on the published protected.ply alone) with the same model and a
# tiny untrained CLIP.
DEMO_PROTECT := --editor tiny --width 128 --rounds 1 --pgd-steps 5 --fit-steps 4 --replay 1
DEMO_REMOVAL := --removal --removal-refit-steps 100

demo: $(STAMP)
	$(VENV)/bin/adlift info scenes/bust/scene.ply
	HF_HUB_OFFLINE=1 $(VENV)/bin/adlift protect scenes/bust/scene.ply --instruction "turn her into a clown" \
		$(DEMO_PROTECT) --out $(DEMO_OUT)/protect
	HF_HUB_OFFLINE=1 $(VENV)/bin/adlift evaluate $(DEMO_OUT)/protect --clip tiny --steps 10 $(DEMO_REMOVAL)
	@echo "Demo outputs: $(DEMO_OUT)/protect/preview.png (raw | protected | difference), manifest.json,"
	@echo "              protected.ply; $(DEMO_OUT)/protect/evaluation/report.md, grid_*.png, metrics.png,"
	@echo "              removal.png (removal attacks: closeness to the raw scene vs protection left)"

# Debian's chromium for the viewer's browser test (tests/test_viewer_browser.py skips without it).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# PlayCanvas splat-transform (npm, pinned by tools/splat-transform/package-lock.json; Node >= 18), the
# independent writer/reader tests/test_web_formats.py compares the web 3DGS formats against (those
# tests skip without it, and fail under CI). Debian's nodejs/npm when node is missing.
ST_DIR := tools/splat-transform
ST_STAMP := $(ST_DIR)/node_modules/.adlift-installed

$(ST_STAMP): $(ST_DIR)/package.json $(ST_DIR)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
		if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
	cd $(ST_DIR) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $(ST_STAMP)

splat-transform: $(ST_STAMP)

test: $(STAMP) chromium splat-transform
	$(PY) -m pytest -q $(PYTEST_ARGS)

# nerfstudio plugin tests in their own venv (built by tests/nerfstudio/make_venv.sh: torch 2.13 first,
# constraints torch==2.13.0 + numpy<2, test-only torchvision stand-in). About 5 min the first time.
NS_VENV ?= .venv-nerfstudio
NS_STAMP := $(NS_VENV)/.adlift-installed
NS_TESTS := tests/nerfstudio tests/test_nerfstudio_support.py tests/test_ply.py tests/test_scene.py \
	tests/test_cameras.py tests/test_camera_io.py tests/test_render_torch.py tests/test_render_parity.py \
	tests/test_editors.py tests/test_attacks.py tests/test_eval_metrics.py tests/test_viewer.py

$(NS_STAMP): pyproject.toml tests/nerfstudio/constraints.txt tests/nerfstudio/make_venv.sh
	bash tests/nerfstudio/make_venv.sh $(NS_VENV) $(PYTHON)
	touch $(NS_STAMP)

test-nerfstudio: $(NS_STAMP)
	$(NS_VENV)/bin/python -m pytest -q $(NS_TESTS) $(PYTEST_ARGS)

view: $(STAMP)
	$(VENV)/bin/adlift view $(DEMO_OUT)/protect

viewer-screenshot: $(STAMP) chromium
	HF_HUB_OFFLINE=1 $(PY) viewers/screenshot.py $(DEMO_OUT)/protect --out docs/viewer.png

scenes: $(STAMP)
	$(PY) scenes/generate.py

bench-render: $(STAMP)
	$(PY) benchmarks/render.py

# gsply is only the benchmark's second candidate (not an AdLift dependency).
bench-formats: $(STAMP) splat-transform
	$(PIP) install --quiet "gsply[sogs,spz]==0.4.6"
	$(PY) benchmarks/formats.py

bench-protect: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/protect.py --threads 2

# The trained mini InstructPix2Pix (docs/MINI_EDITOR.md): seeded, resumable from outputs/train-mini,
# then evaluated on the held-out set and written into adlift/editors/mini_weights/.
train-mini: $(STAMP)
	$(PY) -m adlift.editors.mini_train --out outputs/train-mini --export

cuda: $(STAMP)
	$(PY) -m adlift.render.cuda_build --verbose

cuda-check: $(STAMP)
	$(PY) -m pytest -q tests/test_cuda_sources.py

clean:
	rm -rf $(VENV) $(NS_VENV) outputs $(ST_DIR)/node_modules
