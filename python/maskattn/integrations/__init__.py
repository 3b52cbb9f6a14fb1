"""Bridges from other frameworks' conventions to maskattn's ops.

Each submodule imports its framework only when used, so none of them is a dependency of maskattn:
``maskattn.integrations.transformers`` (Hugging Face transformers, ``pip install "maskattn[transformers]"``).
"""
