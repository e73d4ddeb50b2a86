"""One settings module: the command line and the Dagster resources read the same variables, with
the same defaults, and the README documents every one of them."""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner

from kgents_pipeline import settings
from kgents_pipeline.cli import main
from kgents_pipeline.errors import ConfigError
from tests.conftest import REPO


def test_the_readme_documents_every_setting():
    readme = (REPO / "README.md").read_text()
    missing = [s.env for s in settings.SETTINGS if f"`{s.env}`" not in readme]
    assert not missing, f"README.md does not document {missing}"


def test_every_setting_is_unique_and_has_a_meaning():
    envs = [s.env for s in settings.SETTINGS]
    assert len(envs) == len(set(envs))
    assert all(s.env.startswith("KGENTS_") and s.help for s in settings.SETTINGS)


def test_the_cli_and_the_resources_read_the_same_intent_variable(tmp_path, monkeypatch):
    from kgents_pipeline.defs.resources import resources

    missing = tmp_path / "nowhere" / "intent.yaml"
    monkeypatch.setenv("KGENTS_INTENT", str(missing))
    cluster = resources().resources["cluster"]
    assert isinstance(cluster.intent_path, dg.EnvVar) and cluster.intent_path.env_var_name == (
        "KGENTS_INTENT"
    )
    result = CliRunner().invoke(main, ["policy", "check", "--manifests", str(REPO / "manifests")])
    assert result.exit_code == 2
    assert str(missing) in result.output


def test_a_command_line_option_wins_over_its_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("KGENTS_DB_PATH", str(tmp_path / "from-env.duckdb"))
    result = CliRunner().invoke(main, ["trends", "--db", str(tmp_path / "from-flag.duckdb")])
    assert result.exit_code == 2
    assert "from-flag.duckdb" in result.output and "from-env" not in result.output


@pytest.mark.parametrize(
    ("setting", "value", "read"),
    [
        (settings.RATE, "fast", settings.Setting.integer),
        (settings.K6_TIMEOUT_S, "soon", settings.Setting.number),
        (settings.FORCE_CONFLICTS, "maybe", settings.Setting.flag),
    ],
)
def test_a_malformed_setting_is_one_line_naming_the_variable(monkeypatch, setting, value, read):
    monkeypatch.setenv(setting.env, value)
    with pytest.raises(ConfigError, match=f"^{setting.env} must be .*{value}"):
        read(setting)
