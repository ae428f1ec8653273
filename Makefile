# Every target sets up what it needs first, so `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
CDK_VERSION := 2.1148.1
CDK := .tools/node_modules/.bin/cdk
# checkov in its own venv: its pins would fight the project's (a reviewer's tool, not a dependency)
CHECKOV_VERSION := 3.3.30
CHECKOV := .tools/checkov/bin/checkov
# The KServe SDK, a real OIP client the tests drive against `domicile serve`, in its own venv too:
# it pins psutil<6, and the project's MQTT broker (amqtt) needs psutil>=7.
KSERVE_VERSION := 0.21.0
KSERVE := .tools/kserve/bin/python
# MLServer, the Python peer `make bench` measures `domicile serve` against; uvloop 0.21 because
# MLServer 1.7.1's inference workers call asyncio.get_event_loop(), which later uvloops refuse.
MLSERVER := .tools/mlserver/bin/mlserver
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: setup system-packages docs models rebuild-models templates synth demo serve lint audit test bench soak clean

setup: $(STAMP) $(CDK)

# Debian's mosquitto (and node, venv) when missing: `make test` then runs exactly CI's suite. The demo
# needs none of it beyond Python and Node, so only the test target asks for it.
system-packages:
	@bash .ci/system-packages

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(CDK):
	npm install --prefix .tools --no-audit --no-fund --loglevel=error aws-cdk@$(CDK_VERSION)

$(CHECKOV):
	$(PYTHON) -m venv .tools/checkov
	.tools/checkov/bin/pip install --quiet --upgrade pip
	.tools/checkov/bin/pip install --quiet checkov==$(CHECKOV_VERSION)

$(KSERVE):
	$(PYTHON) -m venv .tools/kserve
	.tools/kserve/bin/pip install --quiet --upgrade pip
	.tools/kserve/bin/pip install --quiet kserve==$(KSERVE_VERSION)

$(MLSERVER):
	$(PYTHON) -m venv .tools/mlserver
	.tools/mlserver/bin/pip install --quiet --upgrade pip
	.tools/mlserver/bin/pip install --quiet mlserver==1.7.1 onnxruntime==1.32.0 uvloop==0.21.0

# The registry's versions are immutable: with models committed, `make models` only lists them (a
# machine whose BLAS rounds differently must not stop the demo); `make rebuild-models` rebuilds
# them and fails if a released version comes out with other bytes.
models: $(STAMP)
	@if [ -f models/manifest.json ]; then \
		$(BIN)/domicile models list; else $(MAKE) rebuild-models; fi

rebuild-models: $(STAMP)
	$(BIN)/domicile models build
	$(BIN)/domicile split build
	$(BIN)/domicile split partition

# The CDK CLI prints cdk-nag and residency errors and fails on them; cfn-lint then checks every
# template, and the residency report gates on any data flow leaving its jurisdiction.
templates: setup
	$(CDK) synth --quiet
	$(BIN)/cfn-lint --ignore-checks W3005 -- cdk.out/*.template.json
	set -o pipefail; $(BIN)/domicile residency report | tail -n 1

# ...and checkov, which fails on any failed check not skipped with its reason in the resource's metadata.
synth: templates $(CHECKOV)
	$(CHECKOV) --directory cdk.out --framework cloudformation --quiet --compact --skip-download

# The sample events through the handlers, then the main job: the whole synthesized app run locally.
demo: setup models templates
	$(BIN)/domicile demo
	$(BIN)/domicile simulate $(SIMULATE_ARGS)

# The HTTP function's handler on http://127.0.0.1:8080 for curl, tritonclient or the KServe SDK (Ctrl-C stops it).
serve: setup models
	$(BIN)/domicile serve $(SERVE_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy domicile domicile_local functions infra edge_components benchmarks events tests examples .ci/audit_dependencies.py

# pip-audit, and PyPI's project endpoint for the pins it cannot reach; fails on a known vulnerability.
audit: $(STAMP)
	$(PY) .ci/audit_dependencies.py

# The manual (docs/, mkdocs): a broken link, a missing page or an unknown anchor fails the build.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet

test: system-packages setup $(CHECKOV) $(KSERVE) lint audit docs
	$(BIN)/pytest -n 2 --dist loadgroup

bench: setup $(MLSERVER)
	$(PY) benchmarks/run.py

# Outside CI: a minute of the local pipeline at its measured max rate, memory and latency compared.
soak: setup
	$(PY) benchmarks/soak.py

clean:
	rm -rf cdk.out .cache runs site .pytest_cache .mypy_cache .ruff_cache
