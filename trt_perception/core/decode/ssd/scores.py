"""Class scores from raw class outputs, and the (anchor, class) candidates above a threshold.

``score_converter``: "sigmoid" (independent per class), "softmax" (over the C columns of an
anchor) or "identity" (the model already outputs probabilities). A candidate is an (anchor, class)
pair with ``score > score_threshold`` (strictly) for a class in ``classes``.

Only candidates are converted exactly: a cheap test on the raw logits first rules out pairs that
cannot pass (sigmoid is monotonic; a softmax probability is at most ``exp(l_c - max_c l)``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

SCORE_CONVERTERS = ("sigmoid", "softmax", "identity")
_MARGIN = 1e-4      # slack of the logit pre-test, so rounding never drops a true candidate


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    probs: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return probs


class CandidateSelector:
    """Picks the candidates of one image's raw class outputs; configured once, called per image.

    ``classes``: the class columns that may be detected; ``score_threshold`` in [0, 1).
    """

    def __init__(self, converter: str, classes: Sequence[int], score_threshold: float) -> None:
        if converter not in SCORE_CONVERTERS:
            raise ValueError(f"score_converter must be one of {SCORE_CONVERTERS}, got {converter!r}")
        self.converter = converter
        self.classes = np.array(sorted(set(classes)), dtype=np.int64)
        self.score_threshold = t = float(score_threshold)
        size = self.classes.size
        consecutive = size and int(self.classes[-1]) - int(self.classes[0]) + 1 == size
        self._columns = slice(int(self.classes[0]), int(self.classes[-1]) + 1) if consecutive else self.classes
        if converter == "sigmoid":
            self._bound = math.log(t / (1.0 - t)) - _MARGIN if t > 0 else -math.inf
        elif converter == "softmax":
            self._bound = math.log(t) - _MARGIN if t > 0 else -math.inf
        else:
            self._bound = t

    def __call__(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """float[A, C] raw class outputs -> candidates in (anchor, class) order:
        (anchor indices int64[M], class ids int64[M], scores float32[M]).
        """
        if self.classes.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        sub = logits[:, self._columns]
        if self.converter == "softmax":
            rows, cols = np.nonzero(sub - logits.max(axis=1, keepdims=True) > self._bound)
            unique_rows, inverse = np.unique(rows, return_inverse=True)
            scores = _softmax_rows(logits[unique_rows].astype(np.float32))[inverse, self.classes[cols]]
        else:
            rows, cols = np.nonzero(sub > self._bound)
            scores = sub[rows, cols].astype(np.float32)
            if self.converter == "sigmoid":       # 1 / (1 + exp(-x)), in place
                np.negative(scores, out=scores)
                np.exp(scores, out=scores)
                scores += 1.0
                np.reciprocal(scores, out=scores)
        ids = self.classes[cols]
        passed = scores > self.score_threshold
        if not passed.all():
            rows, ids, scores = rows[passed], ids[passed], scores[passed]
        return rows, ids, scores
