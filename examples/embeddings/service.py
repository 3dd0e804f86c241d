"""A model fed precomputed 64-dimensional embeddings (generated here): each row is one vector.

bentoml serve examples.embeddings.service:svc

A 2-D reference is a table by default; input_format="embedding" makes each row one vector, watched through
its coordinates, its norm and its Mahalanobis distance to the reference's centre.
"""

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from examples.embeddings.world import embeddings, labels
from guarded_serving import guard

rng = np.random.default_rng(11)
train, held = embeddings(3000, rng), embeddings(3000, rng)
train_labels, held_labels = labels(train, rng), labels(held, rng)
with threadpool_limits(limits=1):  # as in examples/digits: a small fit is slowed by BLAS threads on a busy machine
    model = LogisticRegression(max_iter=1000).fit(train, train_labels)

svc = guard(model.predict_proba, reference=train, holdout=(held, held_labels), input_format="embedding", name="embeddings")
