"""`policy reach` through click's CliRunner and through the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from kgents_pipeline.cli import main
from tests.netpol.helpers import netpol, ns, pod

REPO = Path(__file__).resolve().parents[2]


def cluster_dir(tmp_path: Path) -> Path:
    d = tmp_path / "cluster"
    (d / "sub").mkdir(parents=True)
    (d / "ns.yaml").write_text(yaml.safe_dump_all([ns("web", tier="web"), ns("db")]))
    # a List kind, in JSON, in a sub-folder
    items = [
        pod("web", "front", {"app": "front"}, [80]),
        pod("db", "pg", {"app": "pg"}, [(5432, "TCP", "postgres")], ip="10.1.0.5"),
    ]
    (d / "sub" / "pods.json").write_text(
        json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )
    pol = netpol(
        "db",
        "pg",
        podSelector={"matchLabels": {"app": "pg"}},
        ingress=[
            {
                "from": [{"namespaceSelector": {"matchLabels": {"tier": "web"}}}],
                "ports": [{"port": "postgres"}],
            }
        ],
    )
    (d / "policies.yaml").write_text(yaml.safe_dump(pol))
    (d / "kustomization.yaml").write_text("resources: [ns.yaml]\n")
    (d / "pdb.yaml").write_text("kind: ConfigMap\nmetadata: {name: x}\n")
    return d


QUERIES = [
    {"src": "web/front", "dst": "db/pg", "port": 5432, "protocol": "TCP"},
    {"src": "web/front", "dst": "db/pg", "port": 5433},
    {"src": "203.0.113.9", "dst": "db/pg", "port": 5432},
    {"src": "db/pg", "dst": "203.0.113.9", "port": 443},
]


def test_reach_answers_queries_in_order_with_explanations(tmp_path):
    d = cluster_dir(tmp_path)
    q = tmp_path / "q.json"
    q.write_text(json.dumps(QUERIES))
    result = CliRunner().invoke(
        main, ["policy", "reach", str(d), "--queries", str(q), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["allowed"] for r in rows] == [True, False, False, True]
    assert rows[1]["protocol"] == "TCP"  # defaulted and echoed
    assert [(r["src"], r["dst"], r["port"]) for r in rows] == [
        (q["src"], q["dst"], q["port"]) for q in QUERIES
    ]
    assert "db/pg ingress[0].from[0]" in rows[0]["explanation"]
    assert "named port 'postgres'=5432/TCP" in rows[0]["explanation"]
    assert "isolated for ingress by db/pg" in rows[1]["explanation"]
    assert "skipped kind 'ConfigMap'" in result.stderr  # other kinds: a note, not an error


def test_reach_without_queries_answers_every_pair_on_every_destination_port(tmp_path):
    result = CliRunner().invoke(
        main, ["policy", "reach", str(cluster_dir(tmp_path)), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    got = {(r["src"], r["dst"], r["port"], r["protocol"]): r["allowed"] for r in rows}
    assert got == {
        ("web/front", "db/pg", 5432, "TCP"): True,
        ("db/pg", "web/front", 80, "TCP"): True,
    }


def test_reach_table_format(tmp_path):
    q = tmp_path / "q.json"
    q.write_text(json.dumps(QUERIES[:2]))
    result = CliRunner().invoke(
        main, ["policy", "reach", str(cluster_dir(tmp_path)), "--queries", str(q)]
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["SRC", "DST", "PORT", "ALLOWED", "EXPLANATION"]
    assert "5432/TCP" in lines[1] and "yes" in lines[1]
    assert "NO" in lines[2]


def _script() -> list[str]:
    exe = REPO / ".venv" / "bin" / "kgents-pipeline"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "kgents_pipeline.cli"]


def test_console_script_reach_and_check(tmp_path):
    q = tmp_path / "q.json"
    q.write_text(json.dumps(QUERIES))
    out = subprocess.run(
        [
            *_script(),
            "policy",
            "reach",
            str(cluster_dir(tmp_path)),
            "--queries",
            str(q),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert [r["allowed"] for r in json.loads(out.stdout)] == [True, False, False, True]
    check = subprocess.run(
        [*_script(), "policy", "check", "--format", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["holds"] is True


def test_console_script_bad_input_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: NetworkPolicy\nmetadata: {name: x, namespace: a}\nspec: {podSelector: {}, ingress: [{ports: [{port: 99999}]}]}\n"
    )
    out = subprocess.run(
        [*_script(), "policy", "reach", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert str(bad) in out.stderr and "document 0" in out.stderr and "99999" in out.stderr
