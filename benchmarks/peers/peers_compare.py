"""Our NetworkPolicy engine and its peers on the same cluster, side by side.

Each tool runs as its own process on the same folder of YAML (alternated when repeated), with its
wall time and peak memory (the process's VmHWM, its peak resident set, polled every 5 ms). Its
answers are then normalised to (source pod, destination pod, port, protocol, allowed) over one
universe: every ordered pod pair, a pod with itself included, on every declared container port of
the destination. Agreement is counted per pair of tools, and every disagreement is classified by
the documented rule that explains it: a rule explains an answer when our engine, with the peer's
deviation applied (to the input, or to the answers), gives the peer's answer. A disagreement that
no combination of a peer's rules reproduces is UNEXPLAINED.

Peers: cyclonus (Go, its engine `matcher.Policy.IsTrafficAllowed` via cmd/cyclonus-matrix) and
np-guard's NCA (`nca --connectivity ... -o txt_no_fw_rules --output_endpoints pods`). np-guard's
netpol-analyzer was the intended second peer: the Go module proxy refuses its module here (403).

Run: python benchmarks/peers/peers_compare.py DIR [--tools ours,cyclonus,nca] [--timeout S]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers_build as tools

from kgents_pipeline.netpol.loading import cluster_from_objects, load_objects

HERE = Path(__file__).resolve().parent
TOOLS = ("ours", "cyclonus", "nca")
UNEXPLAINED = "UNEXPLAINED"
NAME_LABEL = "kubernetes.io/metadata.name"
NCA_MAX_PODS = 10_000  # BasePeerSet.max_num_of_pods in NCA 2.1.0: more pods fail an assertion
Row = tuple[str, str, int]  # (destination pod, protocol, port)


# --------------------------------------------------------------------------------- universe
@dataclass
class Universe:
    """Pods in a fixed order and the rows every tool must answer: (dst, protocol, port)."""

    pods: list[str]
    rows: list[Row]

    @classmethod
    def of(cls, objects: Iterable[Mapping]) -> Universe:
        cluster = cluster_from_objects(objects)
        pods = sorted(cluster.pods)
        rows = [
            (key, proto, port)
            for key in pods
            for proto, port in sorted({(cp.protocol, cp.port) for cp in cluster.pods[key].ports})
        ]
        return cls(pods, rows)

    @property
    def index(self) -> dict[str, int]:
        return {key: i for i, key in enumerate(self.pods)}

    @property
    def answers(self) -> int:
        return len(self.rows) * len(self.pods)


Answers = dict[Row, int]  # a row -> bitmask over source pods (bit i: universe.pods[i] allowed)


# ------------------------------------------------------------------------- reading answers
def _read_pod_header(lines: list[str]) -> tuple[list[str], int]:
    head = lines[0].split()
    if head[0] != "pods":
        raise ValueError(f"unexpected first line {lines[0]!r}")
    n = int(head[1])
    return lines[1 : 1 + n], 1 + n


def _class_pods(class_of: Mapping[str, int], universe: Universe) -> dict[int, int]:
    """Each class as a bitmask over the universe's pods."""
    index = universe.index
    out: dict[int, int] = {}
    for key, cls in class_of.items():
        out[cls] = out.get(cls, 0) | 1 << index[key]
    return out


def _expand(mask: int, class_pods: Mapping[int, int]) -> int:
    """A bitmask over classes as a bitmask over pods."""
    pods = 0
    while mask:
        low = mask & -mask
        pods |= class_pods[low.bit_length() - 1]
        mask ^= low
    return pods


def parse_ours(text: str, universe: Universe) -> Answers:
    """Expand our class-level matrix to pod rows; a pod reaching itself is allowed."""
    lines = text.splitlines()
    entries, start = _read_pod_header(lines)
    class_of = {}
    for line in entries:
        key, cls = line.rsplit(" ", 1)
        class_of[key] = int(cls)
    if sorted(class_of) != universe.pods:
        raise ValueError("ours: pods differ from the input's")
    class_pods = _class_pods(class_of, universe)
    class_rows: dict[tuple[int, str, int], int] = {}
    for line in lines[start:]:
        cls, proto, port, hexmask = line.split()
        mask = int.from_bytes(bytes.fromhex(hexmask), "little")
        class_rows[(int(cls), proto, int(port))] = _expand(mask, class_pods)
    index = universe.index
    return {
        (dst, proto, port): class_rows[(class_of[dst], proto, port)] | 1 << index[dst]
        for dst, proto, port in universe.rows
    }


def parse_cyclonus(text: str, universe: Universe) -> Answers:
    lines = text.splitlines()
    pods, start = _read_pod_header(lines)
    if pods != universe.pods:
        raise ValueError("cyclonus: pods differ from the input's")
    out: Answers = {}
    for line in lines[start:]:
        di, proto, port, hexmask = line.split()
        out[(pods[int(di)], proto, int(port))] = int.from_bytes(bytes.fromhex(hexmask), "little")
    return out


_CUBE = re.compile(r"\{([^{}]*)\}")


def _nca_connections(text: str) -> Callable[[str, int], bool]:
    """A predicate (protocol, port) -> allowed for one NCA connection string."""
    if text == "All connections":
        return lambda proto, port: True
    if text == "No connections":
        return lambda proto, port: False
    negate = text.startswith("All but ")
    cubes = []
    for body in _CUBE.findall(text):
        items: dict[str, list[str]] = {}
        current = None
        for token in (t.strip() for t in body.split(",")):
            if ":" in token:
                current, value = token.split(":", 1)
                items[current] = [value]
            elif current is not None:
                items[current].append(token)
        unknown = set(items) - {"protocols", "dst_ports"}
        if unknown:
            raise ValueError(f"NCA connection dimension(s) {sorted(unknown)} in {text!r}")
        protos = set(items.get("protocols", ["TCP", "UDP", "SCTP"]))
        ranges = []
        for value in items.get("dst_ports", ["0-65535"]):
            lo, _, hi = value.partition("-")
            ranges.append((int(lo), int(hi or lo)))
        cubes.append((protos, ranges))
    if not cubes:
        raise ValueError(f"unreadable NCA connection {text!r}")

    def allowed(proto: str, port: int) -> bool:
        hit = any(proto in p and any(lo <= port <= hi for lo, hi in r) for p, r in cubes)
        return hit != negate

    return allowed


def parse_nca(text: str, universe: Universe) -> Answers:
    """NCA's `txt_no_fw_rules` lines `src => dst : connections`; a pair not listed: no connection."""
    index = universe.index
    conns: dict[tuple[str, str], list[Callable[[str, int], bool]]] = {}
    for line in text.splitlines():
        if " => " not in line:
            continue
        pair, _, conn = line.partition(" : ")
        src, _, dst = pair.partition(" => ")
        if src in index and dst in index:
            conns.setdefault((dst, src), []).append(_nca_connections(conn.strip()))
    by_dst: dict[str, list[tuple[str, list[Callable[[str, int], bool]]]]] = {}
    for (dst, src), preds in conns.items():
        by_dst.setdefault(dst, []).append((src, preds))
    out: Answers = {}
    for dst, proto, port in universe.rows:
        mask = 0
        for src, preds in by_dst.get(dst, ()):
            if any(p(proto, port) for p in preds):
                mask |= 1 << index[src]
        out[(dst, proto, port)] = mask
    return out


# ------------------------------------------------------------------------------ running
@dataclass
class Run:
    tool: str
    status: str  # "ok", "timeout", "failed: ..."
    seconds: float
    max_rss_mb: float
    answers: Answers | None = None


def _command(tool: str, cluster_dir: Path, out: Path, stride: int) -> list[str]:
    if tool == "ours":
        return [sys.executable, str(HERE / "ours.py"), str(cluster_dir)]
    paths = tools.require()
    if tool == "cyclonus":
        return [str(paths["cyclonus-matrix"]), f"-dst-stride={stride}", str(cluster_dir)]
    if tool == "nca":
        d = str(cluster_dir)
        return [str(paths["nca"]), "--connectivity", d, "--ns_list", d, "--pod_list", d,
                "--output_format", "txt_no_fw_rules", "--output_endpoints", "pods",
                "--file_out", str(out)]  # fmt: skip
    raise ValueError(f"unknown tool {tool!r}")


def _vm_hwm_kib(pid: int) -> int:
    """The peak resident set of the process's current image (VmHWM), 0 once it is gone.

    Polled rather than taken from rusage: a child started by vfork/exec inherits the parent's
    high-water mark in ru_maxrss, which would credit every tool with this script's memory."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def run_tool(
    tool: str, cluster_dir: Path, universe: Universe, timeout: float, stride: int = 1
) -> Run:
    """Run one tool as a child process; wall time, peak resident set, parsed answers.

    `stride` (cyclonus only): answer every stride-th destination pod, a sample where the full
    matrix takes longer than the time-out."""
    with tempfile.TemporaryDirectory(prefix=f"peers-{tool}-") as tmp:
        out = Path(tmp) / "answers.txt"
        stdout = Path(tmp) / "stdout.txt"
        cmd = _command(tool, cluster_dir, out, stride)
        # Python tools (ours, NCA) keep their compiled bytecode between runs, as an installed
        # tool does; `make` exports PYTHONDONTWRITEBYTECODE, which would recompile every import.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        with stdout.open("wb") as sink, (Path(tmp) / "stderr.txt").open("wb") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=sink, stderr=err, cwd=tmp, env=env)
            status, peak_kib = "ok", 0
            deadline = t0 + timeout
            while True:
                peak_kib = max(peak_kib, _vm_hwm_kib(proc.pid))
                pid, code, _ = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    _, code, _ = os.wait4(proc.pid, 0)
                    status = "timeout"
                    break
                time.sleep(0.005)
            seconds = time.perf_counter() - t0
            proc.returncode = code
        rss_mb = peak_kib / 1024
        if status == "ok" and os.waitstatus_to_exitcode(code) != 0:
            tail = (Path(tmp) / "stderr.txt").read_text(errors="replace").strip()[-300:]
            status = f"failed: exit {os.waitstatus_to_exitcode(code)}: {tail}"
            if tool == "nca" and len(universe.pods) > NCA_MAX_PODS:
                # nca/CoreDS/Peer.py BasePeerSet.max_num_of_pods, checked by an assertion
                status = f"failed: over NCA's {NCA_MAX_PODS:,}-pod limit"
        answers = None
        if status == "ok":
            text = (out if tool == "nca" else stdout).read_text()
            parse = {"ours": parse_ours, "cyclonus": parse_cyclonus, "nca": parse_nca}[tool]
            answers = parse(text, universe)
        return Run(tool, status, seconds, rss_mb, answers)


# ------------------------------------------------------------------------ deviation rules
@dataclass(frozen=True)
class Rule:
    """A documented way a peer answers differently from the Kubernetes API reference.

    `objects` rewrites the input so that our engine answers as the peer does; `self_traffic`
    says what the peer answers for a pod reaching itself ("policies": as for any other pair,
    "absent": never reported). `why` cites the peer's documented behaviour or source.
    """

    name: str
    peer: str
    why: str
    objects: Callable[[list[dict]], list[dict]] | None = None
    self_traffic: str | None = None


def _selectors(objects: list[dict]) -> Iterable[dict]:
    """Every label selector in the NetworkPolicies (podSelector, peers' selectors), in place."""
    for obj in objects:
        if obj.get("kind") != "NetworkPolicy":
            continue
        spec = obj.get("spec") or {}
        if spec.get("podSelector") is not None:
            yield spec["podSelector"]
        for direction, peers_field in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction) or []:
                for peer in rule.get(peers_field) or []:
                    for k in ("podSelector", "namespaceSelector"):
                        if peer.get(k) is not None:
                            yield peer[k]


def notin_requires_key(objects: list[dict]) -> list[dict]:
    """cyclonus: `NotIn` does not match an object without the key.

    cyclonus pkg/kube/labelselector.go IsMatchExpressionMatchForLabels returns false for NotIn when
    the key is absent ("even for NotIn -- if the key isn't there, it's not a match"). The API
    (apimachinery labels.Selector, and the labels concept page: `environment notin (frontend)`
    "selects ... all resources without a label with the environment key") matches them.
    Rewritten as `key Exists` AND `key NotIn values`, which is cyclonus' reading."""
    out = copy.deepcopy(objects)
    for sel in _selectors(out):
        exprs = sel.get("matchExpressions") or []
        extra = [
            {"key": e["key"], "operator": "Exists"} for e in exprs if e.get("operator") == "NotIn"
        ]
        if extra:
            sel["matchExpressions"] = exprs + extra
    return out


def empty_value_matches_missing(objects: list[dict]) -> list[dict]:
    """cyclonus: `matchLabels: {k: ""}` also matches objects that have no label k.

    cyclonus pkg/kube/labelselector.go IsLabelsMatchLabelSelector compares `labels[key] != val`,
    and a Go map lookup of a missing key yields "". The API reads matchLabels {k: v} as `k In (v)`,
    which needs the key (metav1.LabelSelector reference). Rewritten as `k NotIn (every non-empty
    value k has in the input)`, which matches exactly the objects with k="" or without k."""
    out = copy.deepcopy(objects)
    values: dict[str, set[str]] = {}
    for obj in out:
        if obj.get("kind") in ("Pod", "Namespace"):
            for k, v in ((obj.get("metadata") or {}).get("labels") or {}).items():
                if v != "":
                    values.setdefault(k, set()).add(str(v))
    for sel in _selectors(out):
        labels = sel.get("matchLabels") or {}
        empty = [k for k, v in labels.items() if v == ""]
        for k in empty:
            del labels[k]
            sel.setdefault("matchExpressions", []).append(
                {"key": k, "operator": "NotIn", "values": sorted(values.get(k, {"\0none"}))}
            )
    return out


def ipblock_excludes_pods(objects: list[dict]) -> list[dict]:
    """NCA (np-guard): an ipBlock never matches a pod; pods are matched only by selectors.

    NCA models ipBlocks as IP ranges disjoint from the pods it analyses (its connectivity output
    lists them as separate peers, e.g. `0.0.0.0-10.0.255.255 => ns/pod`); np-guard's
    netpol-analyzer documents the same. The API reference's ipBlock matches "particular IP CIDR
    ranges", and the conformance suite matches pod IPs (status.podIP) against them. Rewritten by
    dropping status.podIP: a pod without an address matches no ipBlock."""
    out = copy.deepcopy(objects)
    for obj in out:
        if obj.get("kind") == "Pod" and obj.get("status"):
            obj["status"].pop("podIP", None)
    return out


def exists_scoped_to_policy_namespace(objects: list[dict]) -> list[dict]:
    """NCA: a podSelector requirement `Exists` / `DoesNotExist` in a peer matches only pods of the
    policy's own namespace, whatever the peer's namespaceSelector says.

    NCA Parsers/K8sPolicyYamlParser.py parse_label_selector_requirement answers Exists and
    DoesNotExist with `peer_container.get_peers_with_key(self.namespace, ...)`, the policy's
    namespace, while In / NotIn look in every namespace. The API reference: with both selectors a
    peer "selects particular Pods within particular namespaces" (those the namespaceSelector
    picks). Rewritten by adding the policy namespace's name label to such peers'
    namespaceSelector."""
    out = copy.deepcopy(objects)
    for obj in out:
        if obj.get("kind") != "NetworkPolicy":
            continue
        namespace = (obj.get("metadata") or {}).get("namespace") or "default"
        spec = obj.get("spec") or {}
        for direction, peers_field in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction) or []:
                for peer in rule.get(peers_field) or []:
                    pods, nss = peer.get("podSelector"), peer.get("namespaceSelector")
                    if pods is None or nss is None:
                        continue
                    ops = {e.get("operator") for e in pods.get("matchExpressions") or []}
                    if ops & {"Exists", "DoesNotExist"}:
                        nss.setdefault("matchExpressions", []).append(
                            {"key": NAME_LABEL, "operator": "In", "values": [namespace]}
                        )
    return out


def empty_egress_list_implies_egress(objects: list[dict]) -> list[dict]:
    """NCA: a policy without policyTypes whose `egress` is present but empty (`egress: []`) is
    taken to affect Egress, isolating the pods it selects for egress.

    The API server defaults policyTypes to Ingress, plus Egress only when spec.egress has rules
    (pkg/apis/networking/v1/defaults.go: `if len(obj.Spec.Egress) != 0`); NCA reads the reference's
    wording "policies that contain an egress section" as the key being there. Rewritten by writing
    out the policyTypes NCA assumes."""
    out = copy.deepcopy(objects)
    for obj in out:
        spec = obj.get("spec") or {}
        if (
            obj.get("kind") == "NetworkPolicy"
            and not spec.get("policyTypes")
            and "egress" in spec
            and not spec["egress"]
        ):
            spec["policyTypes"] = ["Ingress", "Egress"]
    return out


RULES: tuple[Rule, ...] = (
    Rule(
        "self-traffic-evaluated",
        "cyclonus",
        "cyclonus evaluates a pod's traffic to itself like any pair (pkg/matcher/policy.go "
        "IsTrafficAllowed has no self case); Kubernetes never blocks a pod's traffic to itself "
        "(the NetworkPolicy concept page: 'a pod cannot block access to itself'; DESIGN.md).",
        self_traffic="policies",
    ),
    Rule("notin-requires-key", "cyclonus", notin_requires_key.__doc__ or "", notin_requires_key),
    Rule(
        "empty-label-value-matches-missing",
        "cyclonus",
        empty_value_matches_missing.__doc__ or "",
        empty_value_matches_missing,
    ),
    Rule(
        "self-traffic-not-reported",
        "nca",
        "NCA's connectivity map leaves out a peer's connections to itself (FWRules/"
        "ConnectivityGraph.py get_connections_without_fw_rules_txt_format: exclude_self_loop_conns "
        "'always true for connectivity-map query output').",
        self_traffic="absent",
    ),
    Rule(
        "ipblock-excludes-pods", "nca", ipblock_excludes_pods.__doc__ or "", ipblock_excludes_pods
    ),
    Rule(
        "exists-scoped-to-policy-namespace",
        "nca",
        exists_scoped_to_policy_namespace.__doc__ or "",
        exists_scoped_to_policy_namespace,
    ),
    Rule(
        "empty-egress-list-implies-egress",
        "nca",
        empty_egress_list_implies_egress.__doc__ or "",
        empty_egress_list_implies_egress,
    ),
)


def rules_of(peer: str) -> tuple[Rule, ...]:
    return tuple(r for r in RULES if r.peer == peer)


def ours_under(
    objects: list[dict],
    universe: Universe,
    rules: Iterable[Rule],
    rows: Iterable[Row] | None = None,
) -> Answers:
    """Our engine's answers with the given peer deviations applied (on `rows`, default all)."""
    self_traffic = "allowed"
    for rule in rules:
        if rule.objects is not None:
            objects = rule.objects(objects)
        if rule.self_traffic is not None:
            self_traffic = rule.self_traffic
    cluster = cluster_from_objects(objects)
    matrix = cluster.matrix()
    index = universe.index
    class_pods = _class_pods({k: c.index for k, c in cluster.class_of.items()}, universe)
    expanded: dict[tuple[int, str, int], int] = {}
    out: Answers = {}
    for dst, proto, port in universe.rows if rows is None else rows:
        cls = cluster.class_of[dst].index
        key = (cls, proto, port)
        if key not in expanded:
            expanded[key] = _expand(matrix.masks[cls][(proto, port)], class_pods)
        bit = 1 << index[dst]
        mask = expanded[key]
        if self_traffic == "allowed":
            mask |= bit
        elif self_traffic == "absent":
            mask &= ~bit
        out[(dst, proto, port)] = mask  # "policies": the class row already holds it
    return out


# ---------------------------------------------------------------------------- comparing
@dataclass
class Agreement:
    a: str
    b: str
    total: int
    agree: int
    classes: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def unexplained(self) -> int:
        return self.classes.get(UNEXPLAINED, 0)


def _subsets(rules: tuple[Rule, ...]) -> list[tuple[Rule, ...]]:
    return [c for n in range(len(rules) + 1) for c in itertools.combinations(rules, n)]


class Explainer:
    """Our engine under every combination of each peer's rules, computed once per cluster, on
    `rows` (default: every row of the universe; a sample when a peer answered only some)."""

    def __init__(
        self, objects: list[dict], universe: Universe, rows: Iterable[Row] | None = None
    ) -> None:
        self.objects = objects
        self.universe = universe
        self.rows = universe.rows if rows is None else list(rows)
        self._cache: dict[tuple[str, ...], Answers] = {}

    def variants(self, tool: str) -> list[tuple[str, Answers]]:
        rules = () if tool == "ours" else rules_of(tool)
        out = []
        for subset in _subsets(rules):
            names = tuple(r.name for r in subset)
            if names not in self._cache:
                self._cache[names] = ours_under(self.objects, self.universe, subset, self.rows)
            out.append(("+".join(names) or "as-specified", self._cache[names]))
        return out


def _example(pods: list[str], bits: int, row: Row, a: str, x: int) -> str:
    i = (bits & -bits).bit_length() - 1
    dst, proto, port = row
    return f"{pods[i]} -> {dst} {port}/{proto}: {a} {'allows' if x >> i & 1 else 'denies'}"


def compare(a: str, answers_a: Answers, b: str, answers_b: Answers, ex: Explainer) -> Agreement:
    """Agreement of two tools on the explainer's rows, each disagreement labelled by the smallest
    rule sets that make our engine give both tools' answers (ours needs none)."""
    pods = ex.universe.pods
    result = Agreement(a, b, len(ex.rows) * len(pods), 0)
    pairs = sorted(
        itertools.product(ex.variants(a), ex.variants(b)),
        key=lambda p: (
            p[0][0].count("+")
            + p[1][0].count("+")
            + (p[0][0] != "as-specified")
            + (p[1][0] != "as-specified")
        ),
    )
    full = (1 << len(pods)) - 1
    for row in ex.rows:
        x, y = answers_a[row], answers_b[row]
        diff = x ^ y
        result.agree += len(pods) - diff.bit_count()
        left = diff
        for (na, ma), (nb, mb) in pairs:
            if not left:
                break
            hit = left & ~(ma[row] ^ x) & ~(mb[row] ^ y) & full
            if hit:
                label = f"{a}:{na} / {b}:{nb}"
                result.classes[label] += hit.bit_count()
                result.examples.setdefault(label, _example(pods, hit, row, a, x))
                left &= ~hit
        if left:
            result.classes[UNEXPLAINED] += left.bit_count()
            result.examples.setdefault(
                UNEXPLAINED, _example(pods, left, row, a, x) + f", {b} the opposite"
            )
    return result


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("cluster", type=Path)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    objects = load_objects([args.cluster])
    universe = Universe.of(objects)
    runs = {}
    for tool in args.tools.split(","):
        run = run_tool(tool, args.cluster, universe, args.timeout)
        runs[tool] = run
        print(f"{tool:9} {run.status:8} {run.seconds:8.2f} s {run.max_rss_mb:8.1f} MB")
    ex = Explainer(objects, universe)
    done = [t for t, r in runs.items() if r.answers is not None]
    for a, b in itertools.combinations(done, 2):
        ag = compare(a, runs[a].answers, b, runs[b].answers, ex)
        print(
            f"\n{a} vs {b}: {ag.agree:,} of {ag.total:,} answers agree ({ag.agree / ag.total:.2%})"
        )
        for label, n in ag.classes.most_common():
            print(f"  {n:>10,}  {label}    e.g. {ag.examples[label]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
