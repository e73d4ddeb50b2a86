"""Our engine as a command, so that it is timed and measured like the peers: a process that reads
a folder of YAML and writes the full matrix.

Output, in the engine's own complete form (every pod of a class has the same answers):
`pods <n>`, then `<namespace/name> <class>` per pod, then one row per destination class and
declared port: `<class> <protocol> <port> <hex>`, <hex> a little-endian bitmask over source
classes. A pod reaching itself is allowed (DESIGN.md); the rows carry what the policies say.

Run: python benchmarks/peers/ours.py DIR > matrix.txt
"""

from __future__ import annotations

import sys

from kgents_pipeline.netpol.loading import cluster_from_objects, load_objects


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    cluster = cluster_from_objects(load_objects([argv[1]]))
    matrix = cluster.matrix()
    n_bytes = (len(cluster.classes) + 7) // 8
    out = [f"pods {len(cluster.pods)}"]
    out.extend(f"{key} {cluster.class_of[key].index}" for key in sorted(cluster.pods))
    for dst, per_port in matrix.masks.items():
        for (proto, port), mask in per_port.items():
            out.append(f"{dst} {proto} {port} {mask.to_bytes(n_bytes, 'little').hex()}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
