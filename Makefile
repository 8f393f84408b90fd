# The README's two commands: `make run` (the main job) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
OUT    ?= runs/reproduce

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

run: $(STAMP)  ## every experiment's quick preset on embedded data -> $(OUT)/report.md
	$(BIN)/python -m launch.reproduce --quick --out=$(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile tests

bench: $(STAMP)  ## throughput vs PyTorch (installs the optional peer)
	$(BIN)/python -m pip install -q -r requirements-bench.txt
	$(BIN)/python -m launch.bench rnn_step --out=runs/bench
	$(BIN)/python -m launch.bench lm_step --out=runs/bench
	$(BIN)/python -m launch.bench varrnn_step --out=runs/bench
	$(BIN)/python -m launch.bench word2vec --peers=gensim --repeats=5 --out=runs/bench  # needs ../shared/data (RNNLAB_DATA)

clean:
	rm -rf runs
