# The two commands of the quickstart: `make demo` and `make test`. Both create the environment first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit env system-deps clean bench bench-superopt

env: $(STAMP)

# clang builds the C programs some tests compare against (objects not made by pybpfdsl), with libbpf's
# headers (bpf_helpers.h) and the kernel's UAPI headers; bpftool shows that our objects load with the kernel
# community's own tool. Installed from the distribution when missing and we may; otherwise those tests
# skip and say why.
system-deps:
	@{ command -v clang && command -v bpftool && [ -f /usr/include/bpf/bpf_helpers.h ] \
	   && [ -f /usr/include/linux/bpf.h ]; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing clang, bpftool and libbpf's headers (apt-get)"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang bpftool \
	      libbpf-dev linux-libc-dev >/dev/null; \
	  else echo "note: clang or bpftool missing; the tests that need them will skip"; fi; }

$(STAMP): pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check pybpfdsl tests examples benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict pybpfdsl

unit: $(STAMP)
	$(VENV)/bin/pytest -q -n 2

test: lint typecheck unit

# Size and speed against an idiomatic libbpf C twin of every example (needs root, clang, libbpf-dev):
# benchmarks/results/size_speed.{md,json,png}.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) benchmarks/size_speed.py

# The superoptimizer on clang-built objects of others' sources and on the examples (needs root and clang):
# benchmarks/results/superopt.{txt,json}.
bench-superopt: $(STAMP)
	$(PY) benchmarks/superopt.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
