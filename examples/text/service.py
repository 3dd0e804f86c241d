"""A TF-IDF text classifier on generated news, guarded in one line. Serve it with

bentoml serve examples.text.service:svc      (from the repository root)

and send texts: curl -d '{"rows": ["The coach says the team will win the final."]}' localhost:3000/predict
The model (fitted here at import, in about a second, on 4,000 generated texts) gets a list of strings.
"""

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from examples.text.corpus import news
from guarded_serving import guard

texts, topics = news(4000, seed=1)
pipe = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000)).fit(texts, topics)

svc = guard(pipe.predict_proba, reference=texts, name="news")
