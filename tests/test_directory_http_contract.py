"""docs/directory-http.md, its OpenAPI file, the HTTP directory and the reference host agree:
the same calls, the same methods."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "docs" / "directory-http.openapi.yaml"


def _spec_calls() -> set[tuple[str, str]]:
    spec = yaml.safe_load(SPEC.read_text())
    return {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
    }


def _normalised(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{id}", path)


def test_the_openapi_file_is_the_calls_the_directory_makes():
    source = (REPO / "reclaim" / "directory" / "http.py").read_text()
    made = {
        (method, _normalised(path.replace("{_segment(key)}", "{id}")))
        for method, path in re.findall(r'_call\(\s*"(GET|POST)",\s*f?"([^"]+)"', source)
    }

    assert made == _spec_calls()


def test_the_reference_host_implements_every_call(tmp_path: Path, monkeypatch):
    module_spec = importlib.util.spec_from_file_location(
        "host_app", REPO / "examples" / "host_directory" / "app.py"
    )
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    app = module.create_app(str(tmp_path / "host.db"), "whsec_" + "A" * 40)

    served = {
        (method.upper(), _normalised(path.removeprefix("/reclaim")))
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/reclaim/")
        for method in operations
    }

    assert served == _spec_calls()


def test_the_guide_names_every_call():
    guide = (REPO / "docs" / "directory-http.md").read_text()

    for method, path in _spec_calls():
        assert f"`{method} {path}" in guide, (method, path)
