"""How figures are written in sentences, by the predictor and by mnist-job alike."""


def count(n, noun, plural=None):
    """'1 error', '2 errors', '1,204 files': a number and its noun, in the right number."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
