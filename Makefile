# The README's two commands: `make run` (the main job) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d" " -f1)
OUT    ?= runs/reproduce

.PHONY: install run test test-fast bench clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

run: $(STAMP)  ## every experiment's quick preset on embedded data -> $(OUT)/report.md
	$(BIN)/python -m launch.reproduce --quick --out=$(OUT)

test: $(STAMP)  ## the whole suite (what CI runs)
	$(BIN)/python -m pytest -n 2 --dist loadfile tests

test-fast: $(STAMP)  ## the edit loop: everything but the tests marked slow
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow" tests

bench: $(STAMP)  ## throughput vs PyTorch (installs the optional peer)
	$(BIN)/python -m pip install -q -r requirements-bench.txt
	$(BIN)/python -m launch.bench rnn_step --out=runs/bench
	$(BIN)/python -m launch.bench lm_step --out=runs/bench
	$(BIN)/python -m launch.bench varrnn_step --out=runs/bench
	$(BIN)/python -m launch.bench word2vec --peers=gensim --repeats=5 --out=runs/bench  # needs ../shared/data (RNNLAB_DATA)

clean:
	rm -rf runs
