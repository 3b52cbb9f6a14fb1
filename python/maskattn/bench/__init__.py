"""``python -m maskattn bench``: timings of maskattn against torch baselines.

One module per concern: ``timing`` (median of repeats), ``harness`` (cases, methods, rows),
``peaks`` (copy bandwidth, matmul rate and, on the CPU, the FMA peak, measured in the same run), ``work`` (byte and FLOP
counts), one scenario module per family (``masks``, ``softmax``, ``attention_cpu``,
``attention_cuda``), and the outputs (``table``, ``report``, ``plot``); ``cli`` ties them together.
"""
