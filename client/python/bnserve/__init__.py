"""bnserve's Python client.

    from bnserve import Client
    client = Client("127.0.0.1:50051")
    job = client.train("mine", dataset="mnist-digits", limit=1000, epochs=5)
    for epoch in client.watch(job.job_id):
        print(epoch.epoch, epoch.train_accuracy)
    prediction = client.predict("mine", images)      # images: numpy [N, 784]
    prediction.classes, prediction.probabilities

`python3 -m bnserve.figures` draws the book's BatchNorm figures from a
server's jobs.
"""
from bnserve.client import (Client, Epoch, Evaluation, Job, Model, ModelVersion,  # noqa: F401
                            Prediction)

__all__ = ["Client", "Epoch", "Evaluation", "Job", "Model", "ModelVersion", "Prediction"]
