"""Digit images (scikit-learn's bundled 8x8 digits), served as images: each row is an 8x8 array.

bentoml serve examples.digits.service:svc

The classifier takes a stack of 8x8 arrays; guard() sees a reference of rows x 8 x 8 and watches each image
through its summaries (brightness, spread, saturated pixels, edges along rows and columns, a random projection).
No network, no pretrained weights: the model is fitted here, in about a second.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from guarded_serving import guard

digits = load_digits()
images, labels = digits.images, digits.target  # 1,797 images of 8x8 pixels, values 0-16
# The set is ordered by writer: a random split, so that the held-out images come from the same writers
order = np.random.default_rng(0).permutation(len(images))
train, held = order[:900], order[900:]
# One BLAS thread: on a busy 2-core machine, OpenBLAS threads spinning for cores made this 0.35 s fit take 19 s
with threadpool_limits(limits=1):
    model = LogisticRegression(max_iter=3000).fit(images[train].reshape(-1, 64), labels[train])


def classify(batch: np.ndarray) -> np.ndarray:
    """Class probabilities for a stack of 8x8 images."""
    return model.predict_proba(batch.reshape(len(batch), 64))


# What the images look like: all of them; what the model answers on images it never saw: the held-out ones
svc = guard(classify, reference=images, holdout=(images[held], labels[held]), name="digits")
