"""cutlib: a reproducible companion to *CUT: Pruning Pre-Trained Multi-Task Models into Compact
Models for Edge Devices* (Zhou, Bao, Wang, Zhong; arXiv 2504.09803) and its baseline DiSparse
(Sun et al., CVPR 2022).

Entry points: :func:`cutlib.experiments.run` (one experiment), the ``cutlib`` command
(:mod:`cutlib.cli`), and the notebooks under ``notebooks/``.
"""

__version__ = "0.1.0"
