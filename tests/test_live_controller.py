"""The one live-controller helper (controller/live.py): a restart is a new Controller on the
same database and port; a process that cannot start fails the start with its own log, in bounded
time; settings reach a process as the YIWANG_* variables Settings reads."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from controller.live import LiveController, settings_env
from controller.settings import Settings


def test_a_restart_is_a_new_controller_on_the_same_database_and_port(tmp_path: Path) -> None:
    live = LiveController(tmp_path / "y.db", background=False)
    with live:
        first = live.controller
        url = live.url
        job_id = live.submit("kept", ["true"], tenant="hubei")
    assert not live.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)
    with live:
        assert live.url == url and live.controller is not first
        assert (first.settings.holder, live.controller.settings.holder) == ("controller-1", "controller-2")
        assert live.job(job_id)["spec"]["name"] == "kept"  # the database stayed


def test_a_process_that_cannot_start_fails_the_start_with_its_log(tmp_path: Path) -> None:
    bad = LiveController(tmp_path / "y.db", process=True, role="nonsense", start_timeout_s=60)
    with pytest.raises(RuntimeError, match="exited with") as err:
        bad.start()
    assert "role" in str(err.value) and "Traceback" in str(err.value)  # the child's own words
    assert not bad.running


def test_a_process_gets_its_settings_and_dies_on_kill(tmp_path: Path) -> None:
    live = LiveController(tmp_path / "y.db", process=True, role="api", holder="api-7")
    with live:
        with live.http() as c:
            ready = c.get("/readyz").json()
            assert ready["role"] == "api" and ready["leader"] is False
        pid = live.pid
        live.kill()
        assert not live.running and live.proc is not None and live.proc.returncode == -9
        assert pid == live.pid


def test_settings_become_the_variables_settings_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    env = settings_env({"background": False, "leader_ttl_s": 2.5, "holder": "h", "role": "api"})
    assert env == {
        "YIWANG_BACKGROUND": "false",
        "YIWANG_LEADER_TTL_S": "2.5",
        "YIWANG_HOLDER": "h",
        "YIWANG_ROLE": "api",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert (s.background, s.leader_ttl_s, s.holder, s.role) == (False, 2.5, "h", "api")
