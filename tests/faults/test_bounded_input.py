"""Item 6: bounded input. YAML is loaded with limits on aliases, nesting and size (checklist,
intent, manifests, kubeconfig, `policy reach` files; the run files in test_run_dirs) and refused
in one line; intent replicas and pod counts are capped; kustomize's stderr is cut to its first
meaningful line; `manifests validate` checks the API server's own limits."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from kgents_pipeline.kube.render import first_meaningful_line
from tests.conftest import REPO
from tests.faults.conftest import BIN, assert_nothing_lost, invoke, one_line

BOMB = "\n".join(
    [
        'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(
            f"{c}: &{c} [{', '.join(['*' + p] * 9)}]"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)  # 9**9 = 387 million strings once expanded


def _measured(*args: object, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """Run the CLI; (result, seconds, peak RSS in MiB of that process alone)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN), *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return result, time.monotonic() - started, usage.ru_maxrss // 1024


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            BOMB + "\nitems:\n- {id: bomb, priority: LOW, title: *i}\n",
            "expands to more than",
        ),
        ("items: " + "[" * 5000 + "]" * 5000 + "\n", "nest"),
        ("items: []\n# " + "x" * (5 << 20) + "\n", "larger than 4 MiB"),
    ],
    ids=["alias-bomb-title", "deep", "huge"],
)
def test_a_checklist_beyond_the_limits_is_one_line_fast_and_small(site, tmp_path, text, needle):
    before = site.inventory()
    bad = tmp_path / "checklist.yaml"
    bad.write_text(text)
    proc, seconds, rss_mib = _measured(
        "verdict", "--db", site.db, "--archive", site.archive, "--checklist", bad, cwd=site.root
    )
    one_line(proc, 2, f"checklist {bad}", needle)
    assert proc.stdout == ""  # no verdict at all, READY least of all
    assert seconds < 30 and rss_mib < 1024, (seconds, rss_mib)  # the unbounded load took 3 GB
    assert_nothing_lost(before, site.inventory())


@pytest.mark.parametrize(
    ("replicas", "needle"),
    [
        (10**9, "replicas: 1000000000 is more than 100"),
        (10_000, "replicas: 10000 is more than 100"),
        (-1, "non-negative integer"),
    ],
)
def test_intent_replicas_are_capped_with_a_clear_error(tmp_path, replicas, needle):
    text = (REPO / "manifests/launch/intent.yaml").read_text()
    intent = tmp_path / "intent.yaml"
    intent.write_text(text.replace("replicas: 3", f"replicas: {replicas}", 1))
    proc, seconds, _ = _measured(
        "policy", "check", "--manifests", REPO / "manifests", "--intent", intent, cwd=tmp_path
    )
    one_line(proc, 2, str(intent), needle)
    assert seconds < 30


def test_intent_pod_count_in_all_is_capped(tmp_path):
    text = (REPO / "manifests/launch/intent.yaml").read_text()
    intent = tmp_path / "intent.yaml"
    intent.write_text(text.replace("replicas: 1\n", "replicas: 70\n"))
    proc = invoke("policy", "check", "--manifests", REPO / "manifests", "--intent", intent)
    one_line(proc, 2, "replicas in all is more than 250 pods")


def test_intent_alias_bomb_and_non_utf8_are_one_line(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB + "\nworkloads: *i\n")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("workloads: []\n# caf\xe9\n".encode("latin-1"))
    for intent, needle in ((bomb, "an alias bomb?"), (latin, "not UTF-8")):
        proc = invoke("policy", "check", "--manifests", REPO / "manifests", "--intent", intent)
        one_line(proc, 2, str(intent), needle)


def _tree(root: Path, docs: dict[str, str]) -> Path:
    root.mkdir()
    (root / "kustomization.yaml").write_text(f"resources: [{', '.join(docs)}]\n")
    for name, text in docs.items():
        (root / name).write_text(text)
    return root


def test_an_alias_bomb_in_the_manifests_is_refused_before_kustomize(tmp_path):
    tree = _tree(
        tmp_path / "m",
        {
            "ns.yaml": BOMB.replace("\n", "\n# ") + "\napiVersion: v1\nkind: Namespace\n"
            "metadata: {name: a}\n",
            "bomb.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: a}\n"
            + "\n".join("x" + line for line in BOMB.splitlines())
            + "\ndata: {d: *i}\n",
        },
    )
    for command in ("validate", "render"):
        proc, seconds, _ = _measured("manifests", command, tree, cwd=tmp_path)
        line = one_line(proc, 2, "bomb.yaml")
        assert "goroutine" not in proc.stderr and len(line) < 500
        assert seconds < 30


def test_kustomize_stderr_is_cut_to_its_first_meaningful_line():
    dump = (
        "fatal error: runtime: out of memory\n\nruntime stack:\n"
        "runtime.throw({0x1c2f9a8?, 0x400000?})\n\t/usr/local/go/src/runtime/panic.go:1023 +0x5c\n"
        + "goroutine 1 [running]:\n\tsigs.k8s.io/kustomize/api.(*Kustomizer).Run(...)\n"
        * 300
    )
    assert first_meaningful_line(dump) == "fatal error: runtime: out of memory"
    assert first_meaningful_line("goroutine 1 [running]:\nsome detail\n") == "some detail"
    assert len(first_meaningful_line("Error: " + "x" * 20_000)) <= 400


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ("{name: a, namespace: ns, annotations: {big: '%s'}}" % ("x" * (5 << 20)), "5242883 bytes"),
        ("{{name: a, namespace: ns, annotations: {{a: '{}', b: '{}'}}}}".format("x" * 140_000, "y" * 140_000), "at most 262144"),
        ("{name: a, namespace: ns, labels: {app: '%s'}}" % ("v" * 64), "label value of 64"),
        ("{name: a, namespace: ns, labels: {'%s': x}}" % ("k" * 64), "name part must be at most 63"),
        ("{name: %s, namespace: ns}" % ("n" * 254), "is 254 characters long: at most 253"),
        ("{name: a, namespace: %s}" % ("n" * 64), "namespace is 64 characters long: at most 63"),
    ],
    ids=["annotation-5MiB", "annotations-total", "label-value", "label-key", "name", "ns"],
)  # fmt: skip
def test_manifests_validate_checks_the_api_servers_own_limits(tmp_path, meta, needle):
    tree = _tree(
        tmp_path / "m",
        {
            "ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n",
            "np.yaml": "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
            f"metadata: {meta}\nspec: {{podSelector: {{}}}}\n",
        },
    )
    proc = invoke("manifests", "validate", tree)
    assert proc.returncode == 1 and "internal error" not in proc.stderr, proc.stderr[-500:]
    assert needle in proc.stdout + proc.stderr and "[api-limits]" in proc.stdout + proc.stderr


def test_a_namespace_name_is_a_dns_label(tmp_path):
    tree = _tree(
        tmp_path / "m",
        {"ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n" % ("n" * 64)},
    )
    proc = invoke("manifests", "validate", tree)
    assert proc.returncode == 1 and "at most 63 (an RFC 1123 DNS label)" in proc.stdout


def test_policy_reach_and_kubeconfig_files_are_bounded_too(tmp_path):
    bomb = tmp_path / "pods.yaml"
    bomb.write_text(BOMB + "\nkind: Pod\nmetadata: {name: p, namespace: a, labels: *i}\n")
    proc = subprocess.run(
        [str(BIN), "policy", "reach", bomb], capture_output=True, text=True, timeout=120
    )
    one_line(proc, 2, str(bomb), "an alias bomb?")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(BOMB + "\ncontexts: *i\n")
    proc = subprocess.run(
        [str(BIN), "manifests", "diff", REPO / "manifests", "--kubeconfig", kubeconfig,
         "--context", "x"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    one_line(proc, 2, str(kubeconfig), "an alias bomb?")
