"""In-process fake Kubernetes API server, only for injected faults (see server.py)."""

from .server import FakeKubeAPI, Fault, Request

__all__ = ["FakeKubeAPI", "Fault", "Request"]
