// Command cyclonus-matrix answers the full reachability matrix of a folder of Kubernetes YAML
// (Namespaces, Pods, NetworkPolicies) with cyclonus' own policy engine: matcher.BuildNetworkPolicies
// and Policy.IsTrafficAllowed, called once per (source pod, destination pod, declared port), which is
// what cyclonus' simulated probe does for each job. cyclonus' CLI reads pods only from a live
// cluster, so this main reads them from files instead; the answers are cyclonus'.
//
// Output (one line each): `pods <n>`, then the n pod keys `namespace/name` in the order used for
// bits, then one row per destination pod and declared port:
// `<dst index> <protocol> <port> <hex>` where <hex> is a little-endian bitmask over source pods.
package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
)

const nameLabel = "kubernetes.io/metadata.name"

type pod struct {
	key       string
	namespace string
	labels    map[string]string
	ip        string
	ports     []corev1.ContainerPort
}

func main() {
	stride := flag.Int("dst-stride", 1, "answer only every N-th destination pod (sampled agreement)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: cyclonus-matrix [-dst-stride N] DIR > matrix.txt")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *stride < 1 {
		flag.Usage()
		os.Exit(2)
	}
	namespaces, pods, policies, err := readDir(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cyclonus-matrix:", err)
		os.Exit(2)
	}
	engine := matcher.BuildNetworkPolicies(true, policies) // true: the CLI's --simplify-policies default

	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer out.Flush()
	fmt.Fprintf(out, "pods %d\n", len(pods))
	for _, p := range pods {
		fmt.Fprintln(out, p.key)
	}
	peers := make([]*matcher.TrafficPeer, len(pods))
	for i, p := range pods {
		peers[i] = &matcher.TrafficPeer{
			Internal: &matcher.InternalPeer{
				PodLabels:       p.labels,
				NamespaceLabels: namespaces[p.namespace],
				Namespace:       p.namespace,
			},
			IP: p.ip,
		}
	}
	bits := make([]byte, (len(pods)+7)/8)
	for di := 0; di < len(pods); di += *stride {
		dst := pods[di]
		seen := map[string]bool{}
		for _, cp := range dst.ports {
			k := fmt.Sprintf("%s %d", cp.Protocol, cp.ContainerPort)
			if seen[k] {
				continue
			}
			seen[k] = true
			clear(bits)
			for si := range pods {
				traffic := &matcher.Traffic{
					Source:           peers[si],
					Destination:      peers[di],
					ResolvedPort:     int(cp.ContainerPort),
					ResolvedPortName: cp.Name,
					Protocol:         cp.Protocol,
				}
				if engine.IsTrafficAllowed(traffic).IsAllowed() {
					bits[si>>3] |= 1 << (si & 7)
				}
			}
			fmt.Fprintf(out, "%d %s %d %s\n", di, cp.Protocol, cp.ContainerPort, hex.EncodeToString(bits))
		}
	}
}

// readDir reads every .yaml/.yml/.json file under dir (multi-document). Objects are completed as
// the API server stores them, since cyclonus otherwise meets them only when read from a cluster:
// policyTypes defaulted (cyclonus panics on an empty list), container port protocol TCP, and the
// kubernetes.io/metadata.name label on every namespace.
func readDir(dir string) (map[string]map[string]string, []pod, []*networkingv1.NetworkPolicy, error) {
	namespaces := map[string]map[string]string{}
	var pods []pod
	var policies []*networkingv1.NetworkPolicy
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ext := filepath.Ext(path)
		if !d.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	sort.Strings(files)
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, nil, err
		}
		dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 1<<16)
		for {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
			}
			if len(raw) == 0 || string(raw) == "null" {
				continue
			}
			var head struct {
				Kind string `json:"kind"`
			}
			if err := json.Unmarshal(raw, &head); err != nil {
				return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
			}
			switch head.Kind {
			case "Namespace":
				var ns corev1.Namespace
				if err := json.Unmarshal(raw, &ns); err != nil {
					return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
				}
				labels := map[string]string{}
				for k, v := range ns.Labels {
					labels[k] = v
				}
				labels[nameLabel] = ns.Name
				namespaces[ns.Name] = labels
			case "Pod":
				var p corev1.Pod
				if err := json.Unmarshal(raw, &p); err != nil {
					return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
				}
				if p.Namespace == "" {
					p.Namespace = "default"
				}
				var ports []corev1.ContainerPort
				for _, c := range p.Spec.Containers {
					for _, cp := range c.Ports {
						if cp.Protocol == "" {
							cp.Protocol = corev1.ProtocolTCP
						}
						ports = append(ports, cp)
					}
				}
				labels := p.Labels
				if labels == nil {
					labels = map[string]string{}
				}
				pods = append(pods, pod{
					key:       p.Namespace + "/" + p.Name,
					namespace: p.Namespace,
					labels:    labels,
					ip:        p.Status.PodIP,
					ports:     ports,
				})
			case "NetworkPolicy":
				var np networkingv1.NetworkPolicy
				if err := json.Unmarshal(raw, &np); err != nil {
					return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
				}
				if np.Namespace == "" {
					np.Namespace = "default"
				}
				if len(np.Spec.PolicyTypes) == 0 {
					np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
					if len(np.Spec.Egress) > 0 {
						np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
					}
				}
				policies = append(policies, &np)
			}
		}
	}
	for _, p := range pods {
		if _, ok := namespaces[p.namespace]; !ok {
			namespaces[p.namespace] = map[string]string{nameLabel: p.namespace}
		}
	}
	sort.Slice(pods, func(i, j int) bool { return strings.Compare(pods[i].key, pods[j].key) < 0 })
	return namespaces, pods, policies, nil
}
