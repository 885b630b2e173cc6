# synack developer entry points.  Everything installs itself into .venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP_RUN  := $(VENV)/.stamp-run
STAMP_TEST := $(VENV)/.stamp-test

.PHONY: demo test lint typecheck check bench bench-impair bench-impair-bbr clean venv images readme sysdeps

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The plot extra too: the labs and `explain --plots` promise PNG plots.
$(STAMP_RUN): pyproject.toml | $(PY)
	$(PIP) install -q -e '.[cli,plot]'
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PIP) install -q -e '.[cli,plot,test,dev]'
	touch $@ $(STAMP_RUN)

venv: $(STAMP_RUN)

## demo: transfer data both ways over the simulated network and print the timeline
demo: $(STAMP_RUN)
	$(VENV)/bin/synack demo $(DEMO_ARGS)

## sysdeps: system packages some tests use (tshark, chromium, socat, curl, ...);
## installed when running as root with apt-get (as CI does), otherwise skipped.
sysdeps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		sh scripts/install-system-deps.sh; \
	else \
		echo "sysdeps: not root or no apt-get: not installing system packages;" \
		     "tests that need them will skip (under CI=true they fail)"; \
	fi

## test: lint (ruff check, ruff format --check), type-check and run every test
test: $(STAMP_TEST) sysdeps lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP_TEST)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP_TEST)
	$(VENV)/bin/mypy

## bench: hot-path and simulator benchmarks, then (as root) synack against the kernel
## over TUN in its own network namespaces; updates docs/benchmarks.md.
## BENCH_NET_ARGS=--quick for a short smoke run of the network part.
## Goodput through an impaired path (loss, delay, rate) is `make bench-impair`, separate.
bench: $(STAMP_TEST)
	$(PY) benchmarks/bench_core.py --write
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		sh scripts/install-bench-deps.sh; \
	fi
	$(PY) benchmarks/bench_net.py --write $(BENCH_NET_ARGS)

## bench-impair: goodput of synack CUBIC and NewReno against Linux CUBIC as senders through
## ../shared/tools/impair (100 Mbit/s, 50 ms RTT, one-BDP queue, loss 0-5%; as root, about
## 15 minutes; not in make test or make bench); updates docs/benchmarks.md.
## BENCH_IMPAIR_ARGS=--quick for a short run, --impair-dir DIR if the tools are elsewhere.
bench-impair: $(STAMP_RUN)
	$(PY) benchmarks/bench_impair.py --write $(BENCH_IMPAIR_ARGS)

## bench-impair-bbr: synack BBR against Linux BBR through the same path (as root, ~10 min).
bench-impair-bbr: $(STAMP_RUN)
	$(PY) benchmarks/bench_impair.py --bbr --write $(BENCH_IMPAIR_ARGS)

## fuzz: the mutation fuzzer over captured segments, 1,000,000 inputs (not in make test)
.PHONY: fuzz
fuzz: $(STAMP_TEST)
	$(PY) benchmarks/fuzz_mutation.py --inputs 1000000

## difftest: differential fuzzing, synack --profile linux against the live kernel (root):
## hypothesis-generated scripts, differences shrunk into tests/packetdrill_linux/diff/ (resumes
## from tests/packetdrill_linux/diff/progress.json; DIFFTEST_ARGS="--scripts N --jobs J").
.PHONY: difftest
difftest: $(STAMP_TEST)
	$(PY) benchmarks/difftest.py $(DIFFTEST_ARGS)

## readme: regenerate the README's sample output and its sequence diagram from the code
## (tests/cli/test_newcomer.py fails while they are out of date)
readme: $(STAMP_RUN)
	$(PY) scripts/readme_sample.py --write

## images: regenerate the README's diagram and plots (docs/images/) from the labs
IMG_TMP := .images-tmp
images: $(STAMP_RUN) readme
	rm -rf $(IMG_TMP) && mkdir -p docs/images
	$(VENV)/bin/synack lab lost-synack -q -o $(IMG_TMP)/lost-synack
	$(VENV)/bin/synack lab fast-retransmit -q -o $(IMG_TMP)/fast-retransmit
	cp $(IMG_TMP)/lost-synack/diagram.svg docs/images/lost-synack.svg
	cp $(IMG_TMP)/fast-retransmit/timeseq.png docs/images/fast-retransmit-timeseq.png
	cp $(IMG_TMP)/fast-retransmit/cwnd_rtt.png docs/images/fast-retransmit-cwnd-rtt.png
	rm -rf $(IMG_TMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
