# The two commands of the README:
#   make demo   Asterisk + pbx-bridge with the demo directory, running in the background
#   make test   install whatever is missing, then run every test (unit, integration, e2e)
.PHONY: demo stop test test-unit lint bench bootstrap

PYTEST_ARGS ?=

bootstrap:
	scripts/bootstrap

demo: bootstrap
	scripts/demo

stop:
	scripts/demo stop

test: bootstrap
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/pytest $(PYTEST_ARGS)

test-unit: bootstrap
	.venv/bin/pytest tests/unit $(PYTEST_ARGS)

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/mypy

# Side-by-side benchmarks (bench/run.py): its own sandbox Asterisk ("bench", ports from
# PBX_BRIDGE_SANDBOX_PORT_OFFSET), about 3 minutes; results in docs/bench/.
BENCH_ARGS ?=
bench: bootstrap
	.venv/bin/python -m bench.run $(BENCH_ARGS)
