.PHONY: install demo test bench protos

install: .venv/.installed

.venv/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh
	touch $@

demo: install
	bash scripts/demo.sh

test: install
	.venv/bin/python -m pytest

bench: install
	.venv/bin/python benchmarks/realtime_factor.py
	.venv/bin/python benchmarks/upload_memory.py

protos:
	.venv/bin/python protos/generate.py
