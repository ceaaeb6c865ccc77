"""Rooms plug into `sie` through the `sie.plugins` entry points of pyproject.toml: the pipelines add their
sub-commands and `sie serve --pipelines`, and sie/ names no other room (tests/test_rooms.py)."""

from __future__ import annotations

import json
import tomllib
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sie.cli import register_plugins
from sie.plugins import GROUP, Plugin, load_plugins

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def declared() -> list[EntryPoint]:
    table = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"][GROUP]
    return [EntryPoint(name, value, GROUP) for name, value in table.items()]


def test_pyproject_declares_the_pipelines_plugin_and_it_loads():
    (plugin,) = load_plugins(declared())
    assert plugin.name == "pipelines" and plugin.commands is not None
    assert [o.name for o in plugin.serve_options] == ["pipelines"]


def test_the_installed_metadata_declares_the_same_plugins():
    installed = sorted((p.name, p.value) for p in entry_points(group=GROUP))
    assert installed == sorted((p.name, p.value) for p in declared()), (
        "the installed sie distribution's entry points differ from pyproject.toml: "
        "reinstall it (pip install --no-deps -e .)")


def test_the_plugins_commands_and_serve_option_register_on_a_typer_app():
    app = typer.Typer()
    register_plugins(app, load_plugins(declared()))
    runner = CliRunner()
    serve = runner.invoke(app, ["serve", "--help"])
    assert serve.exit_code == 0 and "--pipelines" in serve.output and "--preload" in serve.output
    schema = runner.invoke(app, ["schema", "--kind", "query"])  # a pipelines command, run for real
    assert schema.exit_code == 0, schema.output
    assert json.loads(schema.output)["properties"]["kind"]
    for command in ("run", "query", "validate", "plan", "mcp"):
        assert runner.invoke(app, [command, "--help"]).exit_code == 0, command


def test_without_plugins_serve_has_only_its_own_options():
    app = typer.Typer()
    register_plugins(app, [])
    app.command("noop")(lambda: None)  # a second command, so typer keeps `serve` as a sub-command
    out = CliRunner().invoke(app, ["serve", "--help"])
    assert out.exit_code == 0 and "--host" in out.output and "--pipelines" not in out.output


def test_a_plugin_that_cannot_be_imported_is_skipped_and_a_wrong_object_refused(caplog):
    missing = EntryPoint("gone", "no_such_room_for_sie.plugin:plugin", GROUP)
    assert load_plugins([missing]) == []
    assert "gone" in caplog.text and "no_such_room_for_sie" in caplog.text
    with pytest.raises(TypeError, match="expected a sie.plugins.Plugin, got type"):
        load_plugins([EntryPoint("wrong", "sie.errors:SieError", GROUP)])
    assert isinstance(load_plugins(declared())[0], Plugin)
