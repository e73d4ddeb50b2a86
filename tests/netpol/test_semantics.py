"""Each test pins one rule of the Kubernetes NetworkPolicy v1 API reference (networking.k8s.io/v1),
with the expected answer derived from the reference text, not from the engine."""

from __future__ import annotations

from tests.netpol.helpers import allowed, answer, netpol, ns, pod

A, B = "a", "b"


def base(*extra: dict) -> list[dict]:
    return [
        ns(A, team="a"),
        ns(B, team="b"),
        pod(A, "client", {"app": "client"}),
        pod(A, "server", {"app": "server"}, [80, 443, (53, "UDP", "dns"), (8080, "TCP", "http")]),
        pod(B, "other", {"app": "client"}),
        *extra,
    ]


def test_no_policy_selecting_a_pod_means_it_is_not_isolated():
    assert allowed(base(), "a/client", "a/server", 80)
    assert allowed(base(), "b/other", "a/server", 12345)


def test_isolation_is_by_policies_of_the_pods_own_namespace_only():
    # A deny-all in namespace b does not isolate pods of a, even with a matching podSelector.
    objs = base(netpol(B, "deny", podSelector={"matchLabels": {"app": "server"}}))
    assert allowed(objs, "a/client", "a/server", 80)


def test_policy_selecting_a_pod_isolates_it_for_ingress_and_denies_unmatched():
    objs = base(netpol(A, "deny", podSelector={"matchLabels": {"app": "server"}}))
    assert not allowed(objs, "a/client", "a/server", 80)
    # an unselected pod in the same namespace stays open
    assert allowed(objs, "a/server", "a/client", 80)


def test_policies_are_additive_union_of_allows():
    objs = base(
        netpol(A, "deny-all"),
        netpol(A, "allow-80", ingress=[{"ports": [{"port": 80}]}]),
        netpol(A, "allow-443", ingress=[{"ports": [{"port": 443}]}]),
    )
    assert allowed(objs, "a/client", "a/server", 80)
    assert allowed(objs, "a/client", "a/server", 443)
    assert not allowed(objs, "a/client", "a/server", 8080)


def test_connection_needs_source_egress_and_destination_ingress():
    deny_egress = netpol(
        A, "deny-egress", podSelector={"matchLabels": {"app": "client"}}, policy_types=["Egress"]
    )
    assert not allowed(base(deny_egress), "a/client", "a/server", 80)  # egress side denies
    deny_ingress = netpol(A, "deny-ingress", podSelector={"matchLabels": {"app": "server"}})
    r = answer(base(deny_ingress), "a/client", "a/server", 80)
    assert not r.allowed and "destination's ingress" in r.explanation
    both_open = base(
        deny_egress,
        deny_ingress,
        netpol(
            A,
            "e",
            podSelector={"matchLabels": {"app": "client"}},
            egress=[{"to": [{"podSelector": {}}]}],
        ),
    )
    assert not allowed(
        both_open, "a/client", "a/server", 80
    )  # egress open now, ingress still closed


def test_policy_types_default_is_ingress_only_without_egress_rules():
    # no policyTypes, no egress: defaulted to [Ingress]; the selected pod's egress stays open
    objs = base(netpol(A, "p", podSelector={"matchLabels": {"app": "client"}}))
    assert allowed(objs, "a/client", "a/server", 80)
    assert not allowed(objs, "a/server", "a/client", 80)


def test_policy_types_default_adds_egress_when_egress_is_non_empty():
    objs = base(
        netpol(
            A,
            "p",
            podSelector={"matchLabels": {"app": "client"}},
            egress=[{"to": [{"podSelector": {"matchLabels": {"app": "nobody"}}}]}],
        )
    )
    assert not allowed(objs, "a/client", "a/server", 80)  # egress isolated, no rule matches
    assert not allowed(objs, "a/server", "a/client", 80)  # and ingress isolated too (default)


def test_policy_types_default_empty_egress_list_does_not_add_egress():
    objs = base(netpol(A, "p", podSelector={"matchLabels": {"app": "client"}}, egress=[]))
    assert allowed(objs, "a/client", "a/server", 80)


def test_policy_types_empty_list_is_defaulted_like_absent():
    objs = base(netpol(A, "p", podSelector={"matchLabels": {"app": "client"}}, policy_types=[]))
    assert allowed(objs, "a/client", "a/server", 80)
    assert not allowed(objs, "a/server", "a/client", 80)


def test_explicit_egress_only_policy_types_ignores_ingress_rules_and_does_not_isolate_ingress():
    objs = base(netpol(A, "p", policy_types=["Egress"], ingress=[{"from": [{"podSelector": {}}]}]))
    assert not allowed(objs, "a/client", "a/server", 80)  # egress isolated, no egress rule
    assert allowed(objs, "b/other", "a/server", 80)  # ingress not isolated


def test_absent_and_empty_ingress_with_ingress_type_deny_all_ingress():
    assert not allowed(base(netpol(A, "p")), "a/client", "a/server", 80)
    assert not allowed(base(netpol(A, "p", ingress=[])), "a/client", "a/server", 80)


def test_rule_without_from_allows_every_source_including_outside_the_cluster():
    objs = base(netpol(A, "p", ingress=[{"ports": [{"port": 80}]}]))
    assert allowed(objs, "b/other", "a/server", 80)
    assert allowed(objs, "198.51.100.7", "a/server", 80)
    empty_from = base(netpol(A, "p", ingress=[{"from": [], "ports": [{"port": 80}]}]))
    assert allowed(empty_from, "198.51.100.7", "a/server", 80)


def test_rule_without_ports_allows_every_port_and_protocol():
    objs = base(netpol(A, "p", ingress=[{"from": [{"podSelector": {}}]}]))
    assert allowed(objs, "a/client", "a/server", 443)
    assert allowed(objs, "a/client", "a/server", 53, "UDP")
    empty_ports = base(netpol(A, "p", ingress=[{"from": [{"podSelector": {}}], "ports": []}]))
    assert allowed(empty_ports, "a/client", "a/server", 9999, "SCTP")


def test_empty_rule_allows_everything():
    objs = base(netpol(A, "p", ingress=[{}]))
    assert allowed(objs, "203.0.113.1", "a/server", 1)


def test_peers_in_one_rule_are_ored():
    objs = base(
        netpol(
            A,
            "p",
            podSelector={"matchLabels": {"app": "server"}},
            ingress=[
                {
                    "from": [
                        {"podSelector": {"matchLabels": {"app": "client"}}},
                        {"namespaceSelector": {"matchLabels": {"team": "b"}}},
                    ]
                }
            ],
        )
    )
    assert allowed(objs, "a/client", "a/server", 80)
    assert allowed(objs, "b/other", "a/server", 80)


def test_namespace_selector_and_pod_selector_in_one_peer_are_anded():
    anded = [
        {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"team": "b"}},
                    "podSelector": {"matchLabels": {"app": "server"}},
                }
            ]
        }
    ]
    objs = base(netpol(A, "p", podSelector={"matchLabels": {"app": "server"}}, ingress=anded))
    assert not allowed(objs, "b/other", "a/server", 80)  # right namespace, wrong labels
    objs.append(pod(B, "srv", {"app": "server"}))
    assert allowed(objs, "b/srv", "a/server", 80)
    assert not allowed(objs, "a/client", "a/server", 80)


def test_pod_selector_alone_means_the_policys_own_namespace():
    objs = base(
        netpol(
            A,
            "p",
            podSelector={"matchLabels": {"app": "server"}},
            ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}],
        )
    )
    assert allowed(objs, "a/client", "a/server", 80)
    assert not allowed(objs, "b/other", "a/server", 80)  # same labels, other namespace


def test_empty_pod_selector_peer_means_every_pod_of_the_own_namespace():
    objs = base(netpol(A, "p", ingress=[{"from": [{"podSelector": {}}]}]))
    assert allowed(objs, "a/client", "a/server", 80)
    assert not allowed(objs, "b/other", "a/server", 80)


def test_namespace_selector_alone_means_every_pod_of_the_selected_namespaces():
    objs = base(
        netpol(A, "p", ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}])
    )
    assert allowed(objs, "b/other", "a/server", 80)
    assert not allowed(objs, "a/client", "a/server", 80)


def test_empty_namespace_selector_means_all_namespaces_but_not_outside_addresses():
    objs = base(netpol(A, "p", ingress=[{"from": [{"namespaceSelector": {}}]}]))
    assert allowed(objs, "b/other", "a/server", 80)
    assert allowed(objs, "a/client", "a/server", 80)
    assert not allowed(objs, "198.51.100.7", "a/server", 80)


def test_ip_block_matches_outside_addresses_except_the_except_ranges():
    rule = [{"from": [{"ipBlock": {"cidr": "198.51.100.0/24", "except": ["198.51.100.128/25"]}}]}]
    objs = base(netpol(A, "p", ingress=rule))
    assert allowed(objs, "198.51.100.7", "a/server", 80)
    assert not allowed(objs, "198.51.100.200", "a/server", 80)
    assert not allowed(objs, "192.0.2.1", "a/server", 80)
    assert not allowed(objs, "a/client", "a/server", 80)  # a pod without an IP


def test_ip_block_matches_pod_ips_from_status_pod_ip_both_directions():
    objs = [
        pod(A, "client", {"app": "client"}, ip="10.0.0.5"),
        pod(A, "client2", {"app": "client"}, ip="10.0.1.5"),
        pod(A, "server", {"app": "server"}, ip="10.0.9.9"),
        netpol(
            A,
            "in",
            podSelector={"matchLabels": {"app": "server"}},
            ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}]}],
        ),
    ]
    assert allowed(objs, "a/client", "a/server", 80)
    assert not allowed(objs, "a/client2", "a/server", 80)
    egress = [
        *objs[:3],
        netpol(
            A,
            "out",
            podSelector={"matchLabels": {"app": "client"}},
            egress=[{"to": [{"ipBlock": {"cidr": "10.0.9.0/24"}}]}],
        ),
    ]
    assert allowed(egress, "a/client", "a/server", 80)
    assert not allowed(egress, "a/client", "a/client2", 80)


def test_protocol_defaults_to_tcp():
    objs = base(netpol(A, "p", ingress=[{"ports": [{"port": 53}]}]))
    assert allowed(objs, "a/client", "a/server", 53, "TCP")
    assert not allowed(objs, "a/client", "a/server", 53, "UDP")


def test_port_without_number_means_every_port_of_that_protocol():
    objs = base(netpol(A, "p", ingress=[{"ports": [{"protocol": "UDP"}]}]))
    assert allowed(objs, "a/client", "a/server", 53, "UDP")
    assert allowed(objs, "a/client", "a/server", 9999, "UDP")
    assert not allowed(objs, "a/client", "a/server", 80, "TCP")


def test_named_port_resolves_against_the_destination_pods_container_ports():
    objs = [
        pod(A, "client", {"app": "client"}),
        pod(A, "s1", {"app": "server"}, [(8080, "TCP", "http")]),
        pod(A, "s2", {"app": "server"}, [(9090, "TCP", "http")]),
        netpol(
            A,
            "p",
            podSelector={"matchLabels": {"app": "server"}},
            ingress=[{"ports": [{"port": "http"}]}],
        ),
    ]
    assert allowed(objs, "a/client", "a/s1", 8080)
    assert not allowed(objs, "a/client", "a/s1", 9090)
    assert allowed(objs, "a/client", "a/s2", 9090)
    assert not allowed(objs, "a/client", "a/s2", 8080)


def test_named_port_must_match_name_and_protocol():
    objs = base(netpol(A, "p", ingress=[{"ports": [{"port": "dns"}]}]))  # protocol defaults to TCP
    assert not allowed(objs, "a/client", "a/server", 53, "UDP")
    objs = base(netpol(A, "p", ingress=[{"ports": [{"port": "dns", "protocol": "UDP"}]}]))
    assert allowed(objs, "a/client", "a/server", 53, "UDP")


def test_named_port_in_egress_resolves_against_the_destination_pod():
    objs = base(
        netpol(
            A,
            "p",
            podSelector={"matchLabels": {"app": "client"}},
            egress=[{"ports": [{"port": "http"}]}],
        )
    )
    assert allowed(objs, "a/client", "a/server", 8080)
    assert not allowed(objs, "a/client", "a/server", 80)
    assert not allowed(objs, "a/client", "203.0.113.5", 8080)  # nothing to resolve the name on


def test_end_port_is_an_inclusive_range():
    objs = base(netpol(A, "p", ingress=[{"ports": [{"port": 8000, "endPort": 8080}]}]))
    assert allowed(objs, "a/client", "a/server", 8000)
    assert allowed(objs, "a/client", "a/server", 8080)
    assert not allowed(objs, "a/client", "a/server", 8081)
    assert not allowed(objs, "a/client", "a/server", 7999)


def _selected(selector: dict, labels: dict) -> bool:
    objs = [
        pod(A, "client"),
        pod(A, "server", labels),
        netpol(A, "deny", podSelector=selector),
    ]
    return not allowed(objs, "a/client", "a/server", 80)


def test_label_selector_match_labels_and_expressions_are_anded():
    sel = {
        "matchLabels": {"app": "x"},
        "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}],
    }
    assert _selected(sel, {"app": "x", "env": "prod"})
    assert not _selected(sel, {"app": "x", "env": "dev"})
    assert not _selected(sel, {"env": "prod"})


def test_label_selector_operator_in():
    sel = {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "stage"]}]}
    assert _selected(sel, {"env": "stage"})
    assert not _selected(sel, {"env": "dev"})
    assert not _selected(sel, {})


def test_label_selector_operator_not_in_matches_missing_key():
    sel = {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}
    assert _selected(sel, {"env": "dev"})
    assert _selected(sel, {})
    assert not _selected(sel, {"env": "prod"})


def test_label_selector_operator_exists_and_does_not_exist():
    assert _selected({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {"env": ""})
    assert not _selected({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {})
    assert _selected({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {})
    assert not _selected(
        {"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {"env": "x"}
    )


def test_every_namespace_carries_the_metadata_name_label():
    by_name = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": B}}}
    objs = base(netpol(A, "p", ingress=[{"from": [by_name]}]))
    assert allowed(objs, "b/other", "a/server", 80)
    assert not allowed(objs, "a/client", "a/server", 80)


def test_namespace_used_by_pods_but_undeclared_exists_with_its_name_label_only():
    objs = base(
        pod("ghost", "g"),
        netpol(
            A,
            "p",
            ingress=[
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]
                            }
                        }
                    ]
                },
            ],
        ),
    )
    assert allowed(objs, "ghost/g", "a/server", 80)  # no team label: it exists, unlabelled
    assert not allowed(objs, "b/other", "a/server", 80)
    by_name = base(
        pod("ghost", "g"),
        netpol(
            A,
            "p",
            ingress=[
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "ghost"}
                            }
                        }
                    ]
                }
            ],
        ),
    )
    assert allowed(by_name, "ghost/g", "a/server", 80)


def test_traffic_from_a_pod_to_itself_is_always_allowed():
    objs = base(netpol(A, "deny-both", policy_types=["Ingress", "Egress"]))
    r = answer(objs, "a/server", "a/server", 80)
    assert r.allowed and "itself" in r.explanation
    assert not allowed(objs, "a/client", "a/server", 80)


def test_host_network_pods_are_treated_as_ordinary_pods_and_the_explanation_says_so():
    objs = base(pod(A, "node-agent", {"app": "agent"}, host_network=True), netpol(A, "deny"))
    r = answer(objs, "a/node-agent", "a/server", 80)
    assert not r.allowed
    assert "hostNetwork" in r.explanation and "undefined upstream" in r.explanation


def test_explanation_of_an_allow_names_policy_rule_and_peer_on_each_side():
    objs = base(
        netpol(
            A,
            "in",
            podSelector={"matchLabels": {"app": "server"}},
            ingress=[
                {"ports": [{"port": 443}]},
                {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"podSelector": {}}]},
            ],
        ),
        netpol(
            A,
            "out",
            podSelector={"matchLabels": {"app": "client"}},
            egress=[{"to": [{"namespaceSelector": {}}]}],
        ),
    )
    r = answer(objs, "a/client", "a/server", 80)
    assert r.allowed
    assert "a/in ingress[1].from[1]" in r.explanation
    assert "a/out egress[0].to[0]" in r.explanation
    r = answer(objs, "b/other", "a/server", 80)
    assert "not isolated for egress" in r.explanation


def test_explanation_of_a_deny_names_the_isolating_policies():
    objs = base(netpol(A, "deny"), netpol(A, "web", ingress=[{"ports": [{"port": 443}]}]))
    r = answer(objs, "a/client", "a/server", 80)
    assert not r.allowed
    assert (
        "a/deny" in r.explanation
        and "a/web" in r.explanation
        and "no ingress rule" in r.explanation
    )


def test_an_ip_query_endpoint_that_is_a_pod_ip_is_that_pod():
    objs = [
        pod(A, "client", ip="10.1.1.1"),
        pod(A, "server", {"app": "server"}),
        netpol(A, "p", ingress=[{"from": [{"podSelector": {}}]}]),
    ]
    assert allowed(objs, "10.1.1.1", "a/server", 80)  # a pod of a, not an outside address
