"""Values from the command line and config files: refused as one ConfigError/UsageError line, with
the exit code DESIGN gives, before anything is touched."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from llmops.errors import ConfigError, EnvironmentProblem, ExitCode, UsageError
from llmops.evidence import RunDir
from llmops.gateway_config import summarize
from llmops.validate import check_range, read_config_text

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.5, 61.0])
def test_check_range_refuses_non_finite_and_out_of_range(value: float) -> None:
    with pytest.raises(UsageError, match="--interval .* out of range; allowed 0.01..60"):
        check_range("--interval", value, 0.01, 60)


@pytest.mark.parametrize("value", [0.01, 1.0, 60.0])
def test_check_range_accepts_the_bounds(value: float) -> None:
    check_range("--interval", value, 0.01, 60)


def test_non_utf8_config_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    f = tmp_path / "budget.yaml"
    f.write_bytes(b"overhead_mib: 12\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"budget file .*budget.yaml: not UTF-8 text \(byte 22\)"):
        read_config_text(f, "budget file")
    assert ConfigError("x").exit_code == ExitCode.USAGE


def test_missing_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        read_config_text(tmp_path / "nope.yaml", "calibration file")


@pytest.mark.parametrize("old, new, field", [
    ("timeout: 2 ", 'timeout: "2s" ', "model_list[0].litellm_params.timeout"),
    ("cooldown_time: 5", "cooldown_time: soon", "router_settings.cooldown_time"),
    ("num_retries: 1 ", "num_retries: -1 ", "router_settings.num_retries"),
    ("order: 2", "order: .nan", "model_list[1].litellm_params.order"),
])
def test_litellm_numbers_must_be_numbers(tmp_path: Path, old: str, new: str, field: str) -> None:
    text = (ROOT / "compose" / "litellm" / "config.yaml").read_text()
    assert old in text
    bad = tmp_path / "config.yaml"
    bad.write_text(text.replace(old, new, 1))
    # a count (num_retries) says "integer": 1.5 retries is as wrong as "2s"
    with pytest.raises(ConfigError, match=re.escape(field) + " must be a non-negative (number|integer)"):
        summarize(bad)


def test_the_shipped_litellm_configs_pass() -> None:
    for name in ("config.yaml", "config.defaults.yaml", "config.primary-only.yaml"):
        summarize(ROOT / "compose" / "litellm" / name)


def test_uncreatable_run_folder_is_an_environment_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way\n")
    with pytest.raises(EnvironmentProblem, match="cannot write the run folder .*--evidence-dir"):
        RunDir.create(blocker / "evidence")
