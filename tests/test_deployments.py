"""Worker versioning settings (reclaim/temporal/deployments.py): both or neither, and every
case auto-upgrades to the deployment's current build."""

from __future__ import annotations

import pytest
from temporalio.common import VersioningBehavior
from typer.testing import CliRunner

from reclaim.cli import app
from reclaim.settings import Settings
from reclaim.temporal.deployments import VersioningSettingsError, deployment_config


def test_an_unversioned_worker_has_no_deployment():
    assert deployment_config(Settings()) is None


def test_a_versioned_worker_joins_its_deployment_as_its_build_and_cases_auto_upgrade():
    config = deployment_config(Settings(worker_deployment="reclaim", worker_build_id="2026.12.1"))

    assert config is not None and config.use_worker_versioning
    assert (config.version.deployment_name, config.version.build_id) == ("reclaim", "2026.12.1")
    assert config.default_versioning_behavior == VersioningBehavior.AUTO_UPGRADE


@pytest.mark.parametrize(
    "given", [{"worker_deployment": "reclaim"}, {"worker_build_id": "2026.12.1"}]
)
def test_a_deployment_without_a_build_or_a_build_without_a_deployment_is_refused(given):
    with pytest.raises(VersioningSettingsError, match="go together"):
        deployment_config(Settings(**given))


def test_making_a_build_current_needs_to_know_the_deployment(monkeypatch):
    monkeypatch.delenv("RECLAIM_WORKER_DEPLOYMENT", raising=False)
    result = CliRunner().invoke(app, ["temporal", "set-current-build", "--build-id", "b2"])

    assert result.exit_code == 2
    assert "RECLAIM_WORKER_DEPLOYMENT" in result.output
