"""bnserve's Python client.

    from bnserve import Client
    client = Client("127.0.0.1:50051")
    job = client.train("mine", dataset="mnist-digits", limit=1000, epochs=5)
    for epoch in client.watch(job.job_id):
        print(epoch.epoch, epoch.train_accuracy)
    prediction = client.predict("mine", images)      # images: numpy [N, 784]
    prediction.classes, prediction.probabilities
    for layer in client.inspect(weight_init_std=1.0):   # the book's activation histograms
        print(layer.layer, layer.activation.counts)

`python3 -m bnserve.figures` draws the book's BatchNorm figures from a
server's jobs.
"""
from bnserve.client import (Client, Epoch, Evaluation, Histogram, Job,  # noqa: F401
                            LayerActivations, Model, ModelVersion, Prediction)

__all__ = ["Client", "Epoch", "Evaluation", "Histogram", "Job", "LayerActivations", "Model",
           "ModelVersion", "Prediction"]
