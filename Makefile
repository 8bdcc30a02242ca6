# The commands CI and developers share. `make test` is the one README.rst documents.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test test-full lint typecheck docs ci dist demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test,lint]'

# In parallel: two pytest-xdist workers per core (TEST_WORKERS=0 runs in one process),
# each starting the test servers it needs: much of the run waits on servers, client
# subprocesses and fsync, so a worker per core leaves the cores a third idle. A module runs whole in one worker
# (loadfile): some tests read what earlier ones of their module left in the process
# (test_interop's table, the framework runs), module fixtures start servers and build
# the wheel once. (xdist_group/loadgroup would be finer, but pytest 9 ignores the group
# pytest-xdist 3.8 writes into the test's id.)
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$((n * 2)))
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadfile

test: install
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

# The long-running counts of the crash and fuzz tests (issue-sized, minutes).
test-full: install
	PYROGRAM_STORAGE_FULL=1 $(BIN)/python -m pytest $(PYTEST_PARALLEL) -m slow

lint: install
	$(BIN)/ruff check pyrogram_storage tests benchmarks examples docs
	$(BIN)/ruff format --check pyrogram_storage tests benchmarks examples docs

typecheck: install
	$(BIN)/mypy --strict pyrogram_storage

# The site (docs/): warnings are errors, a public name without a docstring or a
# reference that does not resolve fails it. Offline; PYROGRAM_STORAGE_DOCS_INTERSPHINX=1
# links the Python, asyncpg, redis-py, PyMongo and aiogram docs (needs the network).
docs: install
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[docs]'
	rm -rf docs/_build
	$(BIN)/python -m sphinx -b html -W --keep-going docs docs/_build/html

ci: lint typecheck docs test

# The release artifacts (sdist, and the wheel built from it) in dist/. The test run
# installs both in fresh virtualenvs and uses them (tests/test_packaging.py).
dist: install
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

demo: $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check .
	$(BIN)/python examples/quickstart.py

clean:
	rm -rf $(VENV) .venvs build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache docs/_build
