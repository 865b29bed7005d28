# lambda-logs-http: build, publish and share the Lambda layer.   `make help` lists the targets.
#
# The extension is pure Python, so one zip serves x86_64 and arm64; the per-architecture targets
# publish it as two layers, $(LAYER_NAME)-x86 and $(LAYER_NAME)-arm, each tagged with its architecture.
#
# Layer permissions use a fixed statement id per grant ("account-<id>", "org-<org id>"), so granting
# the same principal on the same version again is a no-op: the grant is skipped when the version's
# policy already has that statement id, and AWS's ResourceConflictException for it counts as
# success. A known id also makes revoking easy (remove-layer-version-permission --statement-id).

SHELL := /bin/bash
.DEFAULT_GOAL := help

AWS ?= aws
PYTHON ?= python3
DOCKER ?= docker
LAYER_NAME ?= lambda-logs-http
OUT_DIR ?= dist
SRC_DIR ?= .
VENV ?= .venv
RUNTIMES ?= python3.9 python3.10 python3.11 python3.12 python3.13 python3.14
# The standalone layer (its own CPython) is for the runtimes without Python. AWS takes at most 15
# compatible runtimes per layer version (metadata for filtering in the console, not a limit on
# use): the supported Node.js, Java, .NET, Ruby and OS-only runtimes, and python3.14, where the
# launcher runs the function's own interpreter.
STANDALONE_RUNTIMES ?= nodejs24.x nodejs22.x nodejs20.x java25 java21 java17 java11 java8.al2 \
	dotnet10 dotnet8 ruby3.4 ruby3.3 provided.al2023 provided.al2 python3.14
DOCKER_IMAGE ?= lambda-logs-http-build

ZIP := $(OUT_DIR)/lambda-logs-http.zip
# Single source of truth: __version__ in the package, read without importing it.
PKG_VERSION := $(shell sed -n 's/^__version__[[:space:]]*=[[:space:]]*["'"'"']\([^"'"'"']*\)["'"'"'].*/\1/p' $(SRC_DIR)/lambda_logs_http/__init__.py 2>/dev/null | head -n 1)

# Per-architecture values: make's arch suffix -> AWS architecture name.
ARCH_x86 := x86_64
ARCH_arm := arm64

.PHONY: help build_local build_lambda_x86 build_lambda_arm build_docker \
	deploy_x86 deploy_arm deploy_cli_x86 deploy_cli_arm \
	add_permissions_x86 add_permissions_arm add_permissions_by_account_x86 add_permissions_by_account_arm \
	remove_x86_version remove_arm_version clean venv test lint demo fuzz \
	build_standalone_x86 build_standalone_arm deploy_standalone_x86 deploy_standalone_arm \
	guard-REGION guard-ORG_ID guard-ACCOUNT_ID guard-VERSION

help:
	@echo "lambda-logs-http $(PKG_VERSION) - targets:"
	@echo "  build_local                 build $(ZIP) (+ $(OUT_DIR)/layer/) with bash build.sh"
	@echo "  build_lambda_x86|arm        build and copy to $(OUT_DIR)/lambda-logs-http-<x86_64|arm64>.zip"
	@echo "  build_docker                build the zip inside Docker (Dockerfile.build) into $(ZIP)"
	@echo "  build_standalone_x86|arm    the standalone layer, with its own CPython (Node.js, Java, .NET, Ruby,"
	@echo "                              provided.*): $(OUT_DIR)/lambda-logs-http-standalone-<x86_64|arm64>.zip"
	@echo "                              (first build: minutes, then cached in .cache/standalone/)"
	@echo "  deploy_standalone_x86|arm   publish layer $(LAYER_NAME)-standalone-<x86|arm> (REGION=...)"
	@echo "  deploy_x86|arm              publish layer $(LAYER_NAME)-<x86|arm>       (REGION=...)"
	@echo "                              aliases: deploy_cli_x86|arm; response in $(OUT_DIR)/publish-<arch>.json"
	@echo "  add_permissions_x86|arm     share a layer version with an organization (REGION= ORG_ID= [VERSION=])"
	@echo "  add_permissions_by_account_x86|arm  share with an account      (REGION= ACCOUNT_ID= [VERSION=])"
	@echo "                              VERSION defaults to the last version published from this tree"
	@echo "  remove_x86_version|remove_arm_version  delete a layer version  (REGION= VERSION=)"
	@echo "  demo                        see it work locally: build, run a function in the sandbox (INVOCATIONS= LINES= LOG_FORMAT=)"
	@echo "  test                        run the test suite in $(VENV) (created from requirements-dev.txt)"
	@echo "  fuzz                        every parser and encoder fuzzed for FUZZ_SECONDS (60) each"
	@echo "  lint                        ruff check"
	@echo "  fault_matrix                delivery under receiver faults, end to end; prints the table"
	@echo "  interop                     delivery to real receivers and forward proxies, end to end; prints the table"
	@echo "  clean                       remove $(OUT_DIR)/ and caches"
	@echo "Variables: AWS=$(AWS) LAYER_NAME=$(LAYER_NAME) OUT_DIR=$(OUT_DIR) RUNTIMES='$(RUNTIMES)'"

# --- build ----------------------------------------------------------------------------------------

build_local:
	OUT_DIR='$(OUT_DIR)' SRC_DIR='$(SRC_DIR)' PYTHON='$(PYTHON)' bash build.sh

build_lambda_x86 build_lambda_arm: build_lambda_%: build_local
	cp '$(ZIP)' '$(OUT_DIR)/lambda-logs-http-$(ARCH_$*).zip'
	@echo "built $(OUT_DIR)/lambda-logs-http-$(ARCH_$*).zip"

# The interpreter is cross-compiled once per architecture into .cache/standalone/ (see
# tools/standalone/interpreter.sh), then reused: later builds take seconds.
build_standalone_x86 build_standalone_arm: build_standalone_%:
	OUT_DIR='$(OUT_DIR)' SRC_DIR='$(SRC_DIR)' PYTHON='$(PYTHON)' bash build-standalone.sh $(ARCH_$*)

# docker create + cp works with both the classic builder and BuildKit.
build_docker:
	$(DOCKER) build -f Dockerfile.build -t '$(DOCKER_IMAGE)' .
	mkdir -p '$(OUT_DIR)'
	@cid=$$($(DOCKER) create '$(DOCKER_IMAGE)') && \
	  trap '$(DOCKER) rm -f "$$cid" >/dev/null' EXIT && \
	  $(DOCKER) cp "$$cid:/out/lambda-logs-http.zip" '$(ZIP)' && \
	  echo "built $(ZIP) in Docker"

# --- deploy ---------------------------------------------------------------------------------------

# Fail early, with the variable's name and an example, before building or calling AWS.
guard-REGION guard-ORG_ID guard-ACCOUNT_ID guard-VERSION: guard-%:
	@if [ -z '$($*)' ]; then \
	  echo "error: $* is required, e.g.: make $(or $(firstword $(MAKECMDGOALS)),<target>) $*=$(EXAMPLE_$*)" >&2; \
	  exit 2; \
	fi
EXAMPLE_REGION := eu-west-1
EXAMPLE_ORG_ID := o-a1b2c3d4e5
EXAMPLE_ACCOUNT_ID := 123456789012
EXAMPLE_VERSION := 3

deploy_x86 deploy_arm: deploy_%: guard-REGION build_lambda_%
	@test -n '$(PKG_VERSION)' || { echo "error: cannot read __version__ from $(SRC_DIR)/lambda_logs_http/__init__.py" >&2; exit 2; }
	$(AWS) lambda publish-layer-version --region '$(REGION)' --output json \
	  --layer-name '$(LAYER_NAME)-$*' \
	  --description 'lambda-logs-http $(PKG_VERSION) ($(ARCH_$*)): forwards function logs to an HTTP endpoint' \
	  --license-info MIT \
	  --compatible-architectures $(ARCH_$*) \
	  --compatible-runtimes $(RUNTIMES) \
	  --zip-file 'fileb://$(OUT_DIR)/lambda-logs-http-$(ARCH_$*).zip' \
	  > '$(OUT_DIR)/publish-$(ARCH_$*).json.tmp'
	mv '$(OUT_DIR)/publish-$(ARCH_$*).json.tmp' '$(OUT_DIR)/publish-$(ARCH_$*).json'
	@$(PYTHON) -c 'import json, sys; r = json.load(open(sys.argv[1])); print("published %s (version %s)" % (r["LayerVersionArn"], r["Version"]))' '$(OUT_DIR)/publish-$(ARCH_$*).json'

deploy_standalone_x86 deploy_standalone_arm: deploy_standalone_%: guard-REGION build_standalone_%
	@test -n '$(PKG_VERSION)' || { echo "error: cannot read __version__ from $(SRC_DIR)/lambda_logs_http/__init__.py" >&2; exit 2; }
	$(AWS) lambda publish-layer-version --region '$(REGION)' --output json \
	  --layer-name '$(LAYER_NAME)-standalone-$*' \
	  --description 'lambda-logs-http $(PKG_VERSION) standalone ($(ARCH_$*)): forwards function logs to an HTTP endpoint, with its own Python' \
	  --license-info MIT \
	  --compatible-architectures $(ARCH_$*) \
	  --compatible-runtimes $(STANDALONE_RUNTIMES) \
	  --zip-file 'fileb://$(OUT_DIR)/lambda-logs-http-standalone-$(ARCH_$*).zip' \
	  > '$(OUT_DIR)/publish-standalone-$(ARCH_$*).json.tmp'
	mv '$(OUT_DIR)/publish-standalone-$(ARCH_$*).json.tmp' '$(OUT_DIR)/publish-standalone-$(ARCH_$*).json'
	@$(PYTHON) -c 'import json, sys; r = json.load(open(sys.argv[1])); print("published %s (version %s)" % (r["LayerVersionArn"], r["Version"]))' '$(OUT_DIR)/publish-standalone-$(ARCH_$*).json'

deploy_cli_x86: deploy_x86
deploy_cli_arm: deploy_arm

# $(call layer_version,<arch suffix>): VERSION, else the version in the saved publish response.
layer_version = $(if $(VERSION),$(VERSION),$$($(PYTHON) -c 'import json; import sys; print(json.load(open(sys.argv[1]))["Version"])' '$(OUT_DIR)/publish-$(ARCH_$(1)).json' 2>/dev/null))

# $(call grant,<arch suffix>,<statement id>,<principal>,<extra args>)
# Idempotent: skips a statement id the version's policy already has, and treats AWS's
# ResourceConflictException (statement id exists; e.g. granted concurrently) as success.
define grant
	@version=$(call layer_version,$(1)); \
	if [ -z "$$version" ]; then \
	  echo "error: VERSION is required (no $(OUT_DIR)/publish-$(ARCH_$(1)).json from a previous deploy_$(1)), e.g.: make $@ VERSION=3" >&2; \
	  exit 2; \
	fi; \
	echo "granting lambda:GetLayerVersion on $(LAYER_NAME)-$(1):$$version to $(3)$(if $(4), ($(4)))"; \
	policy=$$($(AWS) lambda get-layer-version-policy --region '$(REGION)' --output text --query Policy \
	  --layer-name '$(LAYER_NAME)-$(1)' --version-number "$$version" 2>/dev/null); \
	if grep -qE '"Sid" *: *"$(2)"' <<<"$$policy"; then \
	  echo "already granted (statement $(2) exists)"; exit 0; \
	fi; \
	err=$$($(AWS) lambda add-layer-version-permission --region '$(REGION)' --output json \
	  --layer-name '$(LAYER_NAME)-$(1)' --version-number "$$version" \
	  --statement-id '$(2)' --action lambda:GetLayerVersion --principal '$(3)' $(4) 2>&1 >/dev/null); \
	rc=$$?; \
	if [ $$rc -eq 0 ]; then \
	  echo "granted (statement $(2))"; \
	elif grep -q ResourceConflictException <<<"$$err"; then \
	  echo "already granted (statement $(2) exists)"; \
	else \
	  echo "$$err" >&2; exit $$rc; \
	fi
endef

add_permissions_x86 add_permissions_arm: add_permissions_%: guard-REGION guard-ORG_ID
	$(call grant,$*,org-$(subst .,-,$(ORG_ID)),*,--organization-id '$(ORG_ID)')

add_permissions_by_account_x86 add_permissions_by_account_arm: add_permissions_by_account_%: guard-REGION guard-ACCOUNT_ID
	$(call grant,$*,account-$(ACCOUNT_ID),$(ACCOUNT_ID),)

remove_x86_version remove_arm_version: remove_%_version: guard-REGION guard-VERSION
	$(AWS) lambda delete-layer-version --region '$(REGION)' \
	  --layer-name '$(LAYER_NAME)-$*' --version-number '$(VERSION)'
	@echo "deleted $(LAYER_NAME)-$* version $(VERSION)"

# --- development ----------------------------------------------------------------------------------

# The stamp records that requirements-dev.txt is installed; it is redone when that file changes.
$(VENV)/.installed: requirements-dev.txt
	test -x '$(VENV)/bin/python' || $(PYTHON) -m venv '$(VENV)'
	'$(VENV)/bin/python' -m pip install -q -r requirements-dev.txt
	touch '$@'

venv: $(VENV)/.installed

# The README's first command: build the layer and watch it forward a real function's logs in the
# local sandbox. INVOCATIONS, LINES and LOG_FORMAT (Text|JSON) tune it; with HTTP_ENDPOINT (and the
# HTTP_AUTH_* variables) exported, the logs go to that endpoint instead of an embedded receiver.
INVOCATIONS ?= 4
LINES ?= 3
LOG_FORMAT ?= Text
demo: venv build_local
	'$(VENV)/bin/python' -m tools.lambda_sandbox.demo --layer '$(OUT_DIR)/layer' \
	  --invocations $(INVOCATIONS) --lines $(LINES) --log-format $(LOG_FORMAT) $(DEMO_ARGS)

test: venv
	'$(VENV)/bin/python' -m pytest $(PYTEST_ARGS)

# Every parser and encoder fuzzed for FUZZ_SECONDS each (make test runs them for 1 s each).
FUZZ_SECONDS ?= 60
fuzz: venv
	FUZZ_SECONDS='$(FUZZ_SECONDS)' '$(VENV)/bin/python' -m pytest -q -p no:cacheprovider tests/fuzz $(PYTEST_ARGS)

lint: venv
	'$(VENV)/bin/ruff' check .

# The fault matrix (tests/faults): the built layer in the sandbox, frozen between invocations,
# against nginx (TLS, basic auth) and a mitmproxy fault layer; prints lost and duplicated records,
# added latency and the flush bound per scenario as a Markdown table. FAULT_BURST_RECORDS sets the
# burst's size (default 1,000,000); the figures stay in FAULT_MATRIX_OUT/results.jsonl.
FAULT_MATRIX_OUT ?= $(OUT_DIR)/fault-matrix
.PHONY: fault_matrix
fault_matrix: venv
	@rm -f '$(FAULT_MATRIX_OUT)/results.jsonl'
	@status=0; FAULT_MATRIX_OUT='$(FAULT_MATRIX_OUT)' '$(VENV)/bin/python' -m pytest tests/faults \
	  $(PYTEST_ARGS) || status=$$?; \
	echo; '$(VENV)/bin/python' tests/faults/report.py '$(FAULT_MATRIX_OUT)/results.jsonl'; \
	exit $$status

# The interoperability suite (tests/interop): the built layer in the sandbox, frozen between
# invocations, against real receivers (http.server, Werkzeug, gunicorn, uvicorn, Hypercorn,
# aiohttp, Node.js, nginx, Caddy, FastAPI) and forward proxies (tinyproxy, mitmproxy); prints
# per receiver what was delivered and runtimeDone -> /event/next beside its own round trip. The
# figures stay in INTEROP_OUT/results.jsonl.
INTEROP_OUT ?= $(OUT_DIR)/interop
.PHONY: interop
interop: venv
	@rm -f '$(INTEROP_OUT)/results.jsonl'
	@status=0; INTEROP_OUT='$(INTEROP_OUT)' '$(VENV)/bin/python' -m pytest tests/interop \
	  $(PYTEST_ARGS) || status=$$?; \
	echo; '$(VENV)/bin/python' tests/interop/report.py '$(INTEROP_OUT)/results.jsonl'; \
	exit $$status

# Performance (bench/README.md): builds the layer from the working tree, prints the tables and
# saves bench/results/<timestamp>.json. bench takes ~13 minutes; bench_quick under a minute.
# BENCH_ARGS passes options through, e.g. BENCH_ARGS='--python /path/to/python3 --json out.json'.
.PHONY: bench bench_quick
bench: venv
	'$(VENV)/bin/python' -m tools.bench.bench $(BENCH_ARGS)

bench_quick: venv
	'$(VENV)/bin/python' -m tools.bench.bench --quick $(BENCH_ARGS)

clean:
	rm -rf '$(OUT_DIR)' build .pytest_cache .ruff_cache
	find . -path './$(VENV)' -prune -o -name __pycache__ -type d -exec rm -rf {} +
