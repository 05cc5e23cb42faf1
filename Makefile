# 汇交联动 (huijiao) — every developer and CI verb. `make test` and `make run` do all set-up on a
# fresh Debian 12 machine as root: apt packages if missing, a venv on /usr/bin/python3 with the
# system site packages (for PyQGIS), pinned dev dependencies from pyproject.toml.
SHELL := /bin/bash
.DEFAULT_GOAL := help

SYS_PYTHON := /usr/bin/python3
VENV := .venv
QT6_VENV := .venv-qt6
PY := $(VENV)/bin/python
PLUGIN := huijiao_plugin
TS := i18n/huijiao_zh_CN.ts
QM := $(PLUGIN)/i18n/huijiao_zh_CN.qm
RC := $(PLUGIN)/resources_rc.py
DEMO_DIR ?= demo
DEMO_SIZE ?= 20000
DEMO_SEED ?= 2024
PROFILES_DIR ?= $(CURDIR)/.qgis-settings
export QT_QPA_PLATFORM ?= offscreen
# The PostgreSQL/PostGIS test database started by tests/pg_setup.sh (optional outside `make test`).
export HUIJIAO_TEST_PG ?= postgresql://huijiao:huijiao@127.0.0.1:5432/huijiao_test
# The plugin's run-time imports that QGIS's own Python needs too (numpy, osgeo, requests, cryptography)
# are Debian packages; tests/unit/test_imports_installed.py checks that every import is installed.
APT_PACKAGES := qgis python3-qgis qgis-providers pyqt5-dev-tools qttools5-dev-tools xvfb xauth \
	fonts-noto-cjk python3-venv python3-pip gdal-bin zip postgresql postgis postgresql-15-postgis-3 \
	poppler-utils python3-scipy python3-numpy python3-gdal python3-requests python3-cryptography \
	python3-matplotlib python3-pyproj nginx nodejs time

.PHONY: help system venv test lint format translations qm resources package deploy run demo-data \
	clean bench bench-compat bench-province pg-start test-fresh test-compat ext-libs

help:
	@echo "make run | test | test-fresh | test-compat | bench-compat | demo-data | lint | format | translations | resources | package | deploy | bench | clean"

# --- set-up ---------------------------------------------------------------------------------------
system:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages: $$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "Run as root (or install: $$missing)"; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.deps: pyproject.toml | system
	$(SYS_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $$($(SYS_PYTHON) -c "import tomllib; \
		print(' '.join(tomllib.load(open('pyproject.toml','rb'))['project']['optional-dependencies']['dev']))")
	touch $@

# PyQt6 alone (no QGIS) for the Qt 6 name check of tests/unit/test_qt6_ready.py
$(QT6_VENV)/.deps: pyproject.toml | system
	$(SYS_PYTHON) -m venv $(QT6_VENV)
	$(QT6_VENV)/bin/python -m pip install -q $$($(SYS_PYTHON) -c "import tomllib; \
		print(' '.join(tomllib.load(open('pyproject.toml','rb'))['project']['optional-dependencies']['qt6-check']))")
	touch $@

venv: system $(VENV)/.deps $(QT6_VENV)/.deps

# QGIS's own Python (Debian 12: no shapely at all) gets a pinned shapely 2 as the plugin's ext-libs folder
# (built in build/ext-libs, copied into the plugin by `make deploy` and `make run`), which compat.py uses only
# where no shapely can be imported: the vectorised comparison engine in the desktop and in qgis_process.
# The wheel runs on the GEOS it bundles (3.13), whatever GEOS QGIS links: compat.py loads it so that its
# calls never reach QGIS's GEOS. It needs numpy >= 1.21. Skipped where QGIS's Python has a shapely.
EXT_LIBS := build/ext-libs
EXT_LIBS_SHAPELY := 2.1.2
ext-libs: venv
	@if $(SYS_PYTHON) -c "import shapely" 2>/dev/null; then echo "QGIS's Python has shapely: no ext-libs"; \
	else rm -rf $(EXT_LIBS) && \
		$(PY) -m pip install -q --no-deps --only-binary=:all: --target $(EXT_LIBS) shapely==$(EXT_LIBS_SHAPELY) && \
		rm -rf $(EXT_LIBS)/shapely/tests && \
		$(SYS_PYTHON) -c "import sys; sys.path.append('$(EXT_LIBS)'); import numpy, shapely; \
			print('ext-libs: shapely', shapely.__version__, 'GEOS', shapely.geos_version, 'numpy', numpy.__version__)"; \
	fi

# --- build products (never committed) ------------------------------------------------------------
$(QM): $(TS) | system
	mkdir -p $(dir $(QM))
	lrelease -silent $(TS) -qm $(QM)

qm: $(QM)

$(RC): resources.qrc $(wildcard $(PLUGIN)/resources/icons/*.svg) | system
	pyrcc5 -o $(RC) resources.qrc

resources: $(RC)

translations: system
	@{ echo "SOURCES = \\"; find $(PLUGIN) -name '*.py' ! -name resources_rc.py | sort | sed 's/$$/ \\/'; \
	   echo ""; echo "FORMS = \\"; find $(PLUGIN) -name '*.ui' | sort | sed 's/$$/ \\/'; echo ""; \
	   echo "TRANSLATIONS = $(TS)"; } > build-i18n.pro
	pylupdate5 -noobsolete build-i18n.pro
	rm -f build-i18n.pro
	$(MAKE) qm

# --- quality ---------------------------------------------------------------------------------------
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/flake8 --select=QGS101,QGS102,QGS103,QGS104,QGS106,QGS107 --exclude=$(RC) $(PLUGIN)

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

pg-start: system
	bash tests/pg_setup.sh

# tus-js-client for the interoperability tests (tests/interop), in the git-ignored tests/interop/node_modules
TUS_JS := tests/interop/node_modules/tus-js-client/package.json
$(TUS_JS): | system
	command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends npm; }
	npm install --prefix tests/interop --no-save --no-audit --no-fund tus-js-client@4.3.1

test: venv qm lint pg-start $(TUS_JS)
	$(PY) -m pytest $(PYTEST_ARGS)

# A Debian 12 minbase root with only make, git and ca-certificates (cached in /var/cache/huijiao-fresh),
# a clean clone of the committed tree, `make test` inside as root. Slow (downloads + whole suite): not in CI.
test-fresh:
	bash tests/tools/fresh_root.sh

# The whole suite inside cached Debian 13 (QGIS 3.40) and sid (QGIS 3.44) roots, built on first use in
# /var/cache/huijiao-compat (root, debootstrap; minutes the first time). COMPAT_ROOTS="trixie" runs one.
COMPAT_ROOTS ?= trixie sid
test-compat: venv
	bash tests/compat/run_roots.sh all $(COMPAT_ROOTS)

bench: venv qm
	$(PY) -m benchmarks $(BENCH_ARGS)

# The same benchmarks on the host's QGIS and inside the compat roots (default: trixie, QGIS 3.40), one table
# with a column per QGIS version (build/compat/bench-versions.md). BENCH_ARGS as for make bench.
COMPAT_BENCH_ROOTS ?= trixie
bench-compat: venv qm
	BENCH_ARGS="$(BENCH_ARGS)" bash tests/compat/run_roots.sh bench $(COMPAT_BENCH_ROOTS)

# Province run: 8 generated counties x 250k patches, process pool and Dask LocalCluster with 2 workers
# (reduced: make bench-province BENCH_ARGS="--size 20000" HUIJIAO_BENCH_COUNTIES=4)
bench-province: venv qm
	$(PY) -m benchmarks --only province $(BENCH_ARGS)

# --- data and running ------------------------------------------------------------------------------
demo-data: venv
	@if [ ! -f $(DEMO_DIR)/county.gpkg ]; then \
		$(PY) -m tests.datagen --out $(DEMO_DIR) --size $(DEMO_SIZE) --seed $(DEMO_SEED); \
	else echo "$(DEMO_DIR)/county.gpkg exists (make clean-demo to regenerate)"; fi

clean-demo:
	rm -rf $(DEMO_DIR)

deploy: venv ext-libs
	$(PY) -m tests.demo_profile deploy --profiles $(PROFILES_DIR)

run: venv ext-libs demo-data
	$(PY) -m tests.demo_profile run --profiles $(PROFILES_DIR) --demo $(DEMO_DIR)

# --- packaging -------------------------------------------------------------------------------------
package: venv
	$(PY) -m tests.package_check --stage build

clean:
	rm -rf build build-i18n.pro $(QM) $(RC) .pytest_cache .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
