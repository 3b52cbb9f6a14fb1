"""Host execution of the CUDA kernels: the same kernel sources run on the CPU under a small CUDA
shim (shim/), built by host_build.py, checked against the float64 references. How the suite was
shown to catch planted kernel bugs: test_host_attention.py's docstring."""
