"""speakerlink server: diarize several clips and link the same speaker across them."""

__version__ = "0.1.0"
