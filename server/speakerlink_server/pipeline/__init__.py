"""The diarization pipeline: decode -> speech regions -> embed windows -> cluster -> link -> result."""
