"""The CLI-side examples reach any API: ``--base-url`` or ``STREAMRUN_BASE_URL``."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from _cli_support import EmulatorThread, emu, make_emulator, retries_without_sleeping

__all__ = ["emu", "make_emulator", "retries_without_sleeping"]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"cli_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_takes_base_url(
    emu: EmulatorThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMRUN_API_KEY", emu.api_key)
    monkeypatch.delenv("STREAMRUN_BASE_URL", raising=False)
    load("quickstart").main(["--base-url", emu.url, "--overlay", "https://o.example/x"])
    assert "stopped inst-" in capsys.readouterr().out
    assert len(emu.state.stopped) == 1
    assert emu.state.count() == 0


def test_bulk_launch_reads_streamrun_base_url(
    emu: EmulatorThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMRUN_API_KEY", emu.api_key)
    monkeypatch.setenv("STREAMRUN_BASE_URL", emu.url)
    load("bulk_launch").main(["--per-configuration", "1"])
    assert "stopped 4 instance(s)" in capsys.readouterr().out
    assert len(emu.state.stopped) == 4
