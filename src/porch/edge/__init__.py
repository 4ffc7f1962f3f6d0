"""The edge around the app: response compression (``--compress``)."""

from porch.edge.compress import CompressionPolicy, Compressor

__all__ = ["CompressionPolicy", "Compressor"]
