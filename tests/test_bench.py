"""The benchmarks still run end to end (a tiny version of `make bench`), so they cannot rot
between the times someone measures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _bench(tmp_path: Path, *args: str) -> dict:
    output = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(output.read_text()))


def test_compare_runs_both_kinds_of_case_and_reports_ratios(tmp_path: Path):
    report = _bench(tmp_path, "compare", "--cases", "4", "--rounds", "1", "--concurrency", "2")

    summary = report["summary"]
    assert [r["completed"] for r in report["rounds"]] == [4, 4]
    assert summary["ceiling"]["failures"] == summary["product"]["failures"] == 0
    assert summary["product_over_ceiling"]["median"] > 0
    # The ceiling has the action shape of a completed case: 28 events when nothing overlaps,
    # a workflow task more when an update lands while one runs.
    assert 28 <= summary["ceiling"]["events_per_case"]["median"] <= 32
    assert summary["product"]["events_per_case"]["median"] >= 28
    assert set(summary["product"]["steps_ms"]) >= {"create", "code", "password", "login"}
    # What each case asked of the Temporal server, from its own metrics: one start and two
    # updates a case on both sides (each counted by the frontend and by the history service).
    for kind in ("ceiling", "product"):
        requests = summary[kind]["server_requests_per_case"]
        assert requests["rpc StartWorkflowExecution"]["median"] == pytest.approx(2.0)
        assert requests["rpc UpdateWorkflowExecution"]["median"] == pytest.approx(4.0)


def test_compare_with_traces_counts_the_spans_each_process_exports(tmp_path: Path):
    report = _bench(
        tmp_path, "compare", "--cases", "4", "--rounds", "1", "--concurrency", "2", "--traces"
    )

    product, ceiling = report["summary"]["product"], report["summary"]["ceiling"]
    assert product["failures"] == 0
    spans = {name: spread["median"] for name, spread in product["spans_per_case"].items()}
    # At least a server span per request (create, code, password, login), a RunActivity per
    # activity (issue_code, apply_reset); the ceiling's own worker is not traced.
    assert spans["reclaim-api"] >= 4 and spans["reclaim-worker"] >= 2, spans
    assert "spans_per_case" not in ceiling
    assert report["config"]["traces"].startswith("OTLP/HTTP")


def test_open_cases_leaves_a_wave_open_and_measures_it(tmp_path: Path):
    report = _bench(tmp_path, "open-cases", "--cases", "30", "--probe", "5")

    assert report["wave"]["start_rate_per_s"] > 0
    assert report["memory_mb_open"]["worker"] > 0
    assert report["database_mb_open"]["temporal"] > 0
    assert report["new_case_ms"]["with_wave_open"]["p99"] > 0


def test_kills_sees_every_code_mailed_once_and_accepted_after_a_worker_dies(tmp_path: Path):
    """A worker killed (SIGKILL) while cases open: each person gets their code, the same one
    if it is mailed again, and the code they type is accepted. After the kill, a case the dead
    worker held waits for it once (the sticky queue's timeout) before another worker serves
    it: longer than the API's deadline and the right code answered 503."""
    report = _bench(
        tmp_path, "kills", "--cases", "8", "--concurrency", "4", "--kills", "1", "--every", "1"
    )

    assert report["kills"] == 1
    assert report["no_code"] == 0
    assert report["different_codes"] == 0
    assert report["code_refused"] == 0, report["refusals"]


def test_oracle_compares_known_and_unknown_identifiers(tmp_path: Path):
    report = _bench(
        tmp_path,
        "oracle",
        *("--people", "40", "--samples", "12", "--requests", "4", "--repeats", "1"),
        *("--pow-samples", "1", "--no-browser"),
    )

    for name in ("first_ms", "repeated_ms"):
        assert report["timing"][name]["known"]["count"] == 4
        assert "median" in report["timing"][name]["delta_known_minus_unknown"]
    assert report["decoys"]["samples"] == {"real": 12, "decoy": 12}
    assert {"channel", "length"} <= set(report["decoys"]["features"])
    assert [c["status_with_solution"] for c in report["pow_curve"]] == [202] * 6
    assert report["pow_python_s"]["1"]["max_number"] == 10_000


def test_overload_drives_levels_past_saturation_and_every_accepted_case_completes(
    tmp_path: Path,
):
    report = _bench(
        tmp_path,
        "overload",
        *("--saturation", "2", "--levels", "1,2", "--duration", "3", "--drain", "120"),
        # One request at a time and no wait for a slot: the clients are told to come back.
        *("--env", "RECLAIM_API_MAX_IN_FLIGHT=1", "--env", "RECLAIM_API_QUEUE_TIMEOUT=0"),
    )

    assert report["saturation"] == 2
    assert [level["concurrency"] for level in report["levels"]] == [2, 4]
    for level in report["levels"]:
        assert level["http_500"] == 0
        assert level["every_accepted_case_completed"]
        assert level["completed_in_window"] + level["completed_in_drain"] >= 1
        assert set(level["refusals"]) <= {"503 overloaded"}
        assert {"create", "code", "password", "login"} <= set(level["steps_ms"])
