# ccgate's benchmark (issue 9; docs/performance.md explains it).  Needs wrk and curl.
#   make bench              the full run, a few minutes; writes bench/results/latest.md
#   make bench-smoke        about 30 s: proves the harness works; its numbers mean nothing
#   make bench REV=HEAD     measure a commit of ccgate instead of the working tree
#   make bench-profile      py-spy samples of ccgate under load (PROFILE_ARGS="--native --connections 1")
#   make bench-pair REV=X   CPU per request of commit X and of the working tree, measured side by side
PYTHON ?= .venv/bin/python
BENCH = $(PYTHON) -m bench.run $(if $(REV),--rev $(REV))

.PHONY: bench bench-smoke bench-profile bench-pair

bench:
	$(BENCH)

bench-smoke:
	$(BENCH) --smoke

# py-spy, a profiler, is installed into the venv on demand (it is no dependency of ccgate).
bench-profile:
	$(PYTHON) -m pip install -q py-spy
	$(PYTHON) -m bench.profile $(PROFILE_ARGS)

# Two stacks loaded at once on the same core: their CPU ratio holds where `make bench` runs scatter.
bench-pair:
	$(PYTHON) -m bench.pair --rev $(or $(REV),$(error set REV, the commit to compare with)) $(PAIR_ARGS)
