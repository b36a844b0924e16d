"""hotfix's bundled patch modules (installed as ``hotfix._patches``).

Each module holds behaviour only: probes and apply steps. Their metadata (id,
version range, triggers, links) lives in ``registry.toml``.
"""
