.PHONY: demo test bench protos

.venv/.installed-%: pyproject.toml scripts/install.sh
	bash scripts/install.sh $*
	touch $@

demo: .venv/.installed-server
	bash scripts/demo.sh

test: .venv/.installed-dev
	.venv/bin/python -m pytest

bench: .venv/.installed-dev
	.venv/bin/python examples/sample_clips.py samples >/dev/null
	.venv/bin/python benchmarks/realtime_factor.py
	.venv/bin/python benchmarks/upload_memory.py
	.venv/bin/python benchmarks/tls_cost.py
	.venv/bin/python benchmarks/cancel_latency.py
	.venv/bin/python benchmarks/kill_recovery.py
	.venv/bin/python benchmarks/truncation.py
	.venv/bin/python benchmarks/fuzz.py
	.venv/bin/python benchmarks/enrollment_load.py
	.venv/bin/python benchmarks/web_tokens.py
	.venv/bin/python benchmarks/quality.py
	.venv/bin/python benchmarks/recognition.py
	.venv/bin/python benchmarks/long_recording.py
	.venv/bin/python benchmarks/live_latency.py ../shared/data/libri-dev-linking ../shared/data/ami-train
	.venv/bin/python benchmarks/live_keepup.py
	.venv/bin/python benchmarks/titanet_speed.py
	.venv/bin/python benchmarks/gpu_speed.py

protos:
	.venv/bin/python protos/generate.py
