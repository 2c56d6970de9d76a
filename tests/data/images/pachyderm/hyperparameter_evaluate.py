"""``/code/evaluate.py`` of Pachyderm's hyperparameter example (``pachyderm/iris-evaluate``),
for haathi's tests. Its source is not in Pachyderm's repository (only its image is); this is
written from the example's README ("Using the test data set we will generate an evaluation
metric, or score, for each of the trained models") and from what ``select.pipeline.json``
reads: ``evaluate.py MODEL TEST_CSV OUTDIR`` scores the model (a pickled scikit-learn
classifier) on the labelled rows of TEST_CSV (iris rows without a header: four features and
the species) and writes its accuracy, a decimal number that ``bc`` reads, to
``OUTDIR/<model name without .pkl>_metric.txt``.
"""

import argparse
import os

import joblib
import pandas as pd

parser = argparse.ArgumentParser(description="Score a trained iris model on a test set.")
parser.add_argument("model", type=str, help="the pickled model")
parser.add_argument("testfile", type=str, help="the test set (CSV, no header)")
parser.add_argument("outdir", type=str, help="where the metric file goes")
args = parser.parse_args()

cols = ["Sepal_Length", "Sepal_Width", "Petal_Length", "Petal_Width", "Species"]
features = cols[:4]

model = joblib.load(args.model)
test = pd.read_csv(args.testfile, names=cols)
accuracy = model.score(test[features], test["Species"])

name = os.path.splitext(os.path.basename(args.model))[0]
with open(os.path.join(args.outdir, name + "_metric.txt"), "w") as out:
    out.write(f"{accuracy:.4f}\n")
