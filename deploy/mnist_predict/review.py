"""The review threshold: an `ok` row whose top probability is below it gets review=yes, for a person to look at.

Chosen on the risk-coverage curves of bench/robustness.py (table and curve in bench/README.md): the share of
files kept against the accuracy of the kept ones, for clean and for photo-like digits, and the share of
non-digits that would pass unflagged. A light module, so the CLI's defaults cost no onnxruntime import.
"""

DEFAULT_MIN_CONFIDENCE = 0.8
