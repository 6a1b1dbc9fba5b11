"""The committed gRPC code must be what protos/ generates today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "client"


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "protos" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = module.generate(tmp_path)
    assert fresh, "protoc produced nothing"
    for path in fresh:
        relative = path.relative_to(tmp_path)
        committed = GENERATED / relative
        assert committed.is_file(), f"{relative} is not committed; run: python protos/generate.py"
        assert committed.read_text() == path.read_text(), f"{relative} is stale; run: python protos/generate.py"
    committed_all = {p.relative_to(GENERATED) for p in GENERATED.rglob("*_pb2*.py*")}
    assert committed_all == {p.relative_to(tmp_path) for p in fresh}, "generated files without a .proto"
