"""`make dev` stops on Ctrl-C within 10 s, children included: a real `make dev` (dg dev, its
webserver, daemon and code server), interrupted as a terminal interrupts it. The SIGTERM case
is the last test of tests/ui/test_dagster_ui.py, on the server those tests use."""

from __future__ import annotations

from tests.ui.conftest import DagsterDev


def test_make_dev_stops_on_ctrl_c_within_10_s_children_included(tmp_path):
    dev = DagsterDev(tmp_path, {"KGENTS_DB_PATH": str(tmp_path / "metrics.duckdb")})
    try:
        dev.wait_ready()
        assert len(dev.tree()) >= 5
    except BaseException:
        dev.kill()
        raise
    assert dev.stop("ctrl-c") < 10
