# The two commands of the README. Both create .venv/ on first use.
.PHONY: serve test bench

serve:  ## install and serve the embedded demo model on http://127.0.0.1:8000
	scripts/setup.sh serve
	.venv/bin/evotoken serve $(ARGS)

test:   ## install everything and run the whole test suite
	scripts/setup.sh dev
	.venv/bin/python -m pytest -q $(ARGS)
