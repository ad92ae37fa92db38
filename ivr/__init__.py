"""ivr: an offline, self-hosted voice IVR."""

__version__ = "0.1.0"
