# Two commands set everything up and run: `make demo` and `make test`.
# Both bootstrap a virtualenv from pyproject.toml, and (as root) the Debian packages the tests use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HELM := .tools/bin/helm
DEBS := postgresql prometheus chromium fonts-wqy-microhei

.PHONY: all demo test lint typecheck unit bench system tools clean image

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,infra]'
	touch $(STAMP)

# Debian packages for the real servers the tests start (PostgreSQL, Prometheus + promtool) and the
# browser the dashboard tests drive (chromium, through Playwright; Playwright never downloads one).
system:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=""; \
	  [ -x /usr/lib/postgresql/15/bin/initdb ] || missing="$$missing postgresql"; \
	  command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	  [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	  [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing="$$missing fonts-wqy-microhei"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	else echo "not root: skipping Debian packages ($(DEBS)); tests needing them will say so"; fi

$(HELM): tools/get-helm.sh
	bash tools/get-helm.sh .tools

tools: $(STAMP) system $(HELM)

demo: $(STAMP)
	$(BIN)/yiwang demo

lint: $(STAMP)
	$(BIN)/ruff check controller tests infra tools
	$(BIN)/ruff format --check controller tests infra tools

typecheck: $(STAMP)
	$(BIN)/mypy controller infra

# The controller/agent image (Containerfile) with podman, as root: tools/image-base.sh installs
# podman/runc/mmdebstrap/slirp4netns and makes the Debian base locally (cached in .tools/images).
# Another base (your mirror): make image BASE=registry.example/mirror/debian:bookworm
IMAGE ?= localhost/yiwang:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image:
	base="$${BASE:-$$(bash tools/image-base.sh | tail -n 1)}" && \
	podman build --build-arg BASE="$$base" -t $(IMAGE) -f Containerfile .

unit: tools
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/pytest -q

test: tools lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m controller.bench --out reports/bench.json

clean:
	rm -rf $(VENV) .tools reports .demo
