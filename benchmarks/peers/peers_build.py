"""Where the peer tools live and how they are built: one cache outside the repository.

`make peers` runs `python benchmarks/peers/peers_build.py build`: cyclonus (its CLI and the matrix main
in cmd/cyclonus-matrix, built from the Go module pinned here) and np-guard's NCA (a virtualenv
with the version pinned in nca-requirements.txt). The cache folder is named after a hash of the
files that decide what gets built, so a change to any of them builds afresh and an unchanged tree
is a fast no-op. The differential test and the benchmark find the tools through this module.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
INPUTS = ("go.mod", "go.sum", "tools.go", "cmd/cyclonus-matrix/main.go", "nca-requirements.txt")
CYCLONUS_MODULE = "github.com/mattfenwick/cyclonus"


class PeersMissing(RuntimeError):
    """The peer tools are not built for this tree."""


def fingerprint() -> str:
    digest = hashlib.sha256()
    for name in INPUTS:
        digest.update(name.encode() + b"\0" + (HERE / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kgents-pipeline" / "peers" / fingerprint()


def cyclonus_matrix() -> Path:
    return cache_dir() / "bin" / "cyclonus-matrix"


def cyclonus() -> Path:
    return cache_dir() / "bin" / "cyclonus"


def nca() -> Path:
    return cache_dir() / "nca" / "bin" / "nca"


def version(module: str) -> str:
    """The version go.mod pins for `module`."""
    for line in (HERE / "go.mod").read_text().splitlines():
        parts = line.split()
        if module in parts:
            return parts[parts.index(module) + 1]
    raise KeyError(module)


def nca_version() -> str:
    for line in (HERE / "nca-requirements.txt").read_text().splitlines():
        if line.startswith("network-config-analyzer=="):
            return line.split("==", 1)[1].strip()
    raise KeyError("network-config-analyzer")


def require() -> dict[str, Path]:
    """The built tools, or PeersMissing naming the command that builds them."""
    tools = {"cyclonus-matrix": cyclonus_matrix(), "cyclonus": cyclonus(), "nca": nca()}
    missing = [name for name, path in tools.items() if not os.access(path, os.X_OK)]
    if not (cache_dir() / "nca" / ".installed").exists() and "nca" not in missing:
        missing.append("nca")
    if missing:
        raise PeersMissing(
            f"peer tools not built ({', '.join(missing)} missing under {cache_dir()}): "
            "run `make peers`"
        )
    return tools


def build() -> None:
    """Build whatever is missing; each part lands by rename, so a half build is never used."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    if not (os.access(cyclonus_matrix(), os.X_OK) and os.access(cyclonus(), os.X_OK)):
        if shutil.which("go") is None:
            raise PeersMissing("the Go toolchain (`go`) is needed to build cyclonus")
        tmp = Path(tempfile.mkdtemp(prefix="bin.", dir=root))
        env = {**os.environ, "CGO_ENABLED": "0"}
        try:
            subprocess.run(
                ["go", "build", "-trimpath", "-o", str(tmp) + os.sep,
                 "./cmd/cyclonus-matrix", f"{CYCLONUS_MODULE}/cmd/cyclonus"],
                cwd=HERE, env=env, check=True,
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(root / "bin", ignore_errors=True)
        tmp.rename(root / "bin")
    stamp = root / "nca" / ".installed"
    if not stamp.exists():
        # Built in place (a virtualenv's scripts name its path), then stamped when complete.
        venv = root / "nca"
        shutil.rmtree(venv, ignore_errors=True)
        uv = [sys.executable, "-m", "uv"]
        subprocess.run([*uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
        subprocess.run(
            [*uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
             "-r", str(HERE / "nca-requirements.txt")],
            check=True,
        )  # fmt: skip
        stamp.touch()
    require()


def main(argv: list[str]) -> int:
    if argv[1:] == ["build"]:
        try:
            build()
        except PeersMissing as exc:
            print(f"peers_build.py: {exc}", file=sys.stderr)
            return 2
        print(cache_dir())
        return 0
    if argv[1:] == ["path"]:
        print(cache_dir())
        return 0
    print("usage: peers_build.py build|path", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
