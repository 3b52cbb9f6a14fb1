"""Host execution of the CUDA kernels: the same kernel sources run on the CPU under a small CUDA
shim, checked against the float64 references (see test_host_attention.py)."""
