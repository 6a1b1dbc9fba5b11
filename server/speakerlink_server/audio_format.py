"""The one audio format every stage and engine works in: 16 kHz mono float32 in [-1, 1].

It sits below both the pipeline and the engines, so neither imports the other for it.
"""

SAMPLE_RATE = 16000
