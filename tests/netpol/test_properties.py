"""Property tests over small random clusters: invariants of the NetworkPolicy semantics, and an
independent oracle written straight from the API reference text."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgents_pipeline.netpol.loading import cluster_from_objects
from tests.netpol.helpers import netpol, ns, pod

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMESPACES = ["a", "b", "c"]
KEYS, VALUES = ["app", "tier"], ["x", "y"]
CONTAINER_PORTS = [(80, "TCP", "http"), (81, "TCP", "web"), (53, "UDP", "dns"), (53, "TCP", "dns")]
EXTERNAL = ["192.0.2.10", "10.9.9.9"]

labels_st = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2)


@st.composite
def selector_st(draw) -> dict:
    sel: dict = {}
    ml = draw(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=1))
    if ml:
        sel["matchLabels"] = ml
    if draw(st.booleans()):
        op = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]))
        expr: dict = {"key": draw(st.sampled_from(KEYS)), "operator": op}
        if op in ("In", "NotIn"):
            expr["values"] = draw(
                st.lists(st.sampled_from(VALUES), min_size=1, max_size=2, unique=True)
            )
        sel["matchExpressions"] = [expr]
    return sel


@st.composite
def peer_st(draw) -> dict:
    kind = draw(st.sampled_from(["pod", "ns", "both", "ip"]))
    if kind == "ip":
        block: dict = {"cidr": draw(st.sampled_from(["10.0.0.0/16", "10.0.0.0/8", "192.0.2.0/24"]))}
        if block["cidr"] != "192.0.2.0/24" and draw(st.booleans()):
            block["except"] = ["10.0.1.0/24"]
        return {"ipBlock": block}
    peer: dict = {}
    if kind in ("pod", "both"):
        peer["podSelector"] = draw(selector_st())
    if kind in ("ns", "both"):
        peer["namespaceSelector"] = draw(selector_st())
    return peer


@st.composite
def ports_st(draw) -> list[dict] | None:
    if draw(st.booleans()):
        return None
    out = []
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["num", "name", "range", "proto"]))
        proto = draw(st.sampled_from([None, "TCP", "UDP"]))
        p: dict = {} if proto is None else {"protocol": proto}
        if kind == "num":
            p["port"] = draw(st.sampled_from([53, 80, 81]))
        elif kind == "name":
            p["port"] = draw(st.sampled_from(["http", "web", "dns"]))
        elif kind == "range":
            p["port"], p["endPort"] = 50, draw(st.sampled_from([60, 80, 100]))
        out.append(p)
    return out


@st.composite
def rule_st(draw, peer_field: str) -> dict:
    rule: dict = {}
    peers = draw(st.one_of(st.none(), st.lists(peer_st(), max_size=2)))
    if peers is not None:
        rule[peer_field] = peers
    ports = draw(ports_st())
    if ports is not None:
        rule["ports"] = ports
    return rule


@st.composite
def policy_st(draw, name: str) -> dict:
    spec: dict = {"podSelector": draw(selector_st())}
    if draw(st.booleans()):
        spec["ingress"] = draw(st.lists(rule_st("from"), max_size=2))
    if draw(st.booleans()):
        spec["egress"] = draw(st.lists(rule_st("to"), max_size=2))
    types = draw(st.sampled_from([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    if types is not None:
        spec["policyTypes"] = types
    return netpol(draw(st.sampled_from(NAMESPACES)), name, **spec)


@st.composite
def cluster_st(draw) -> list[dict]:
    objs = [ns(n, **draw(labels_st)) for n in NAMESPACES[:2]]  # "c" stays undeclared
    n_pods = draw(st.integers(2, 5))
    for i in range(n_pods):
        ports = draw(
            st.lists(st.sampled_from(CONTAINER_PORTS), min_size=1, max_size=3, unique=True)
        )
        ip = draw(st.sampled_from([None, f"10.0.0.{i + 1}", f"10.0.1.{i + 1}"]))
        objs.append(pod(draw(st.sampled_from(NAMESPACES)), f"p{i}", draw(labels_st), ports, ip=ip))
    for j in range(draw(st.integers(0, 4))):
        objs.append(draw(policy_st(f"np{j}")))
    return objs


# ---------------------------------------------------------------- oracle from the reference text
def _sel(sel: dict | None, labels: dict) -> bool:
    if sel is None:
        return True
    if any(labels.get(k) != v for k, v in (sel.get("matchLabels") or {}).items()):
        return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e.get("values") or []
        ok = {
            "In": k in labels and labels[k] in vals,
            "NotIn": k not in labels or labels[k] not in vals,
            "Exists": k in labels,
            "DoesNotExist": k not in labels,
        }[op]
        if not ok:
            return False
    return True


def oracle(objs: list[dict], src, dst, port: int, proto: str) -> bool:
    """src/dst: a pod dict or an IP string."""
    ns_labels = {
        o["metadata"]["name"]: {**o["metadata"]["labels"]} for o in objs if o["kind"] == "Namespace"
    }
    for n in NAMESPACES:
        ns_labels.setdefault(n, {})
        ns_labels[n]["kubernetes.io/metadata.name"] = n
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    if isinstance(src, dict) and src is dst:
        return True

    def types(p):
        s = p["spec"]
        return s.get("policyTypes") or (["Ingress", "Egress"] if s.get("egress") else ["Ingress"])

    def ip_of(ep):
        if isinstance(ep, str):
            return ipaddress.ip_address(ep)
        ip = (ep.get("status") or {}).get("podIP")
        return ipaddress.ip_address(ip) if ip else None

    def peer_ok(peer, policy_ns, ep):
        if "ipBlock" in peer:
            ip = ip_of(ep)
            b = peer["ipBlock"]
            return (
                ip is not None
                and ip in ipaddress.ip_network(b["cidr"])
                and not any(ip in ipaddress.ip_network(e) for e in b.get("except") or [])
            )
        if isinstance(ep, str):
            return False
        ep_ns = ep["metadata"]["namespace"]
        if "namespaceSelector" in peer:
            if not _sel(peer["namespaceSelector"], ns_labels[ep_ns]):
                return False
        elif ep_ns != policy_ns:
            return False
        return _sel(peer.get("podSelector"), ep["metadata"]["labels"])

    def ports_ok(rule):
        if not rule.get("ports"):
            return True
        dst_ports = [] if isinstance(dst, str) else dst["spec"]["containers"][0]["ports"]
        for p in rule["ports"]:
            if p.get("protocol", "TCP") != proto:
                continue
            if "port" not in p:
                return True
            if isinstance(p["port"], str):
                if any(
                    cp.get("name") == p["port"]
                    and cp.get("protocol", "TCP") == proto
                    and cp["containerPort"] == port
                    for cp in dst_ports
                ):
                    return True
            elif p["port"] <= port <= p.get("endPort", p["port"]):
                return True
        return False

    def side(direction, subject, other, peer_field, rules_field):
        if isinstance(subject, str):
            return True
        sel = [
            p
            for p in policies
            if p["metadata"]["namespace"] == subject["metadata"]["namespace"]
            and direction in types(p)
            and _sel(p["spec"]["podSelector"], subject["metadata"]["labels"])
        ]
        if not sel:
            return True
        for p in sel:
            for rule in p["spec"].get(rules_field) or []:
                peers = rule.get(peer_field)
                if ports_ok(rule) and (
                    not peers or any(peer_ok(x, p["metadata"]["namespace"], other) for x in peers)
                ):
                    return True
        return False

    return side("Egress", src, dst, "to", "egress") and side("Ingress", dst, src, "from", "ingress")


def _questions(objs: list[dict]):
    pods = [o for o in objs if o["kind"] == "Pod"]
    ends = pods + EXTERNAL
    for s in ends:
        for d in ends:
            if isinstance(s, str) and isinstance(d, str):
                continue
            for port, proto in [(80, "TCP"), (81, "TCP"), (53, "UDP"), (53, "TCP"), (55, "TCP")]:
                yield s, d, port, proto


def _name(ep) -> str:
    return ep if isinstance(ep, str) else f"{ep['metadata']['namespace']}/{ep['metadata']['name']}"


def _answers(objs: list[dict]) -> dict:
    cluster = cluster_from_objects(objs)
    return {
        (_name(s), _name(d), port, proto): cluster.query(_name(s), _name(d), port, proto)
        for s, d, port, proto in _questions(objs)
    }


# ---------------------------------------------------------------------------------- properties
@SETTINGS
@given(cluster_st())
def test_engine_agrees_with_an_oracle_written_from_the_reference(objs):
    cluster = cluster_from_objects(objs)
    for s, d, port, proto in _questions(objs):
        assert cluster.query(_name(s), _name(d), port, proto).allowed == oracle(
            objs, s, d, port, proto
        ), (
            _name(s),
            _name(d),
            port,
            proto,
        )


@SETTINGS
@given(cluster_st())
def test_class_matrix_agrees_with_per_query_explanation(objs):
    cluster = cluster_from_objects(objs)
    matrix = cluster.matrix()
    for src, dst, port, proto, ok in matrix.pairs():
        assert cluster.query(src.key, dst.key, port, proto).allowed == ok


@SETTINGS
@given(cluster_st(), st.data())
def test_adding_a_policy_opens_only_what_one_of_its_rules_allows(objs, data):
    before = _answers(objs)
    extra = data.draw(policy_st("added"))
    after = _answers([*objs, extra])
    key = f"{extra['metadata']['namespace']}/added"
    for q, r in after.items():
        if r.allowed and not before[q].allowed:
            assert f"{key} ingress[" in r.explanation or f"{key} egress[" in r.explanation, (
                q,
                r.explanation,
            )


def _without_direction(objs: list[dict], namespace: str, direction: str) -> list[dict]:
    """The objects with `direction` taken out of every policy of `namespace` (as if none isolated)."""
    out = []
    for o in objs:
        if o["kind"] != "NetworkPolicy" or o["metadata"]["namespace"] != namespace:
            out.append(o)
            continue
        spec = dict(o["spec"])
        types = spec.get("policyTypes") or (
            ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
        )
        rest = [t for t in types if t != direction]
        if rest:
            spec["policyTypes"] = rest
            out.append({**o, "spec": spec})
    return out


@SETTINGS
@given(cluster_st(), st.sampled_from(NAMESPACES), st.sampled_from(["Ingress", "Egress"]))
def test_allow_all_rule_equals_no_isolation_for_that_direction(objs, namespace, direction):
    if direction == "Ingress":
        allow_all = netpol(namespace, "allow-all", ingress=[{}])
    else:
        allow_all = netpol(namespace, "allow-all", policy_types=["Egress"], egress=[{}])
    with_allow = _answers([*objs, allow_all])
    unisolated = _answers(_without_direction(objs, namespace, direction))
    for q, r in with_allow.items():
        assert r.allowed == unisolated[q].allowed, q


@SETTINGS
@given(cluster_st(), st.randoms())
def test_policy_order_does_not_matter(objs, rnd):
    shuffled = list(objs)
    rnd.shuffle(shuffled)
    a, b = _answers(objs), _answers(shuffled)
    assert {q: r.allowed for q, r in a.items()} == {q: r.allowed for q, r in b.items()}


@SETTINGS
@given(cluster_st())
def test_a_pod_always_reaches_itself(objs):
    cluster = cluster_from_objects(objs)
    for p in cluster.pods.values():
        assert cluster.query(p.key, p.key, 80).allowed
