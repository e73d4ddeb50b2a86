"""In-process fake Kubernetes API server used by the tests (see server.py)."""

from .server import FakeKubeAPI, Fault, Request

__all__ = ["FakeKubeAPI", "Fault", "Request"]
