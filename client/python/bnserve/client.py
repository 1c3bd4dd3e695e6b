"""Client: a typed layer over bnserve's gRPC API (bnserve.v1 and the Open
Inference Protocol), with NumPy arrays in and out.

Every method is one RPC (watch and wait stream or poll); errors are
grpc.RpcError with the server's status code. A Client is safe to use from
several threads (gRPC channels and stubs are).
"""
import collections
import dataclasses
import ipaddress
import json
import os
from typing import Dict, Iterator, List, Optional, Sequence, Union

import grpc
import numpy as np

from bnserve.v1 import inference_service_pb2 as _inference
from bnserve.v1 import inference_service_pb2_grpc as _inference_grpc
from bnserve.v1 import model_registry_pb2 as _registry
from bnserve.v1 import model_registry_pb2_grpc as _registry_grpc
from bnserve.v1 import training_service_pb2 as _training
from bnserve.v1 import training_service_pb2_grpc as _training_grpc
from bnserve.v1 import types_pb2 as _types
from bnserve.v2 import open_inference_grpc_pb2 as _v2
from bnserve.v2 import open_inference_grpc_pb2_grpc as _v2_grpc

_ACTIVATIONS = {"relu": _types.RELU, "sigmoid": _types.SIGMOID, "tanh": _types.TANH}
_OPTIMIZERS = {"sgd": _types.SGD, "momentum": _types.MOMENTUM, "nesterov": _types.NESTEROV,
               "adagrad": _types.ADAGRAD, "rmsprop": _types.RMSPROP, "adam": _types.ADAM}
_BN_MODES = {"inference": _types.INFERENCE, "batch_statistics": _types.BATCH_STATISTICS}
_SPLITS = {"train": _types.TRAIN, "test": _types.TEST}
_TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


@dataclasses.dataclass
class Epoch:
    epoch: int
    train_loss: float
    train_accuracy: float
    validation_accuracy: float
    seconds: float

    @staticmethod
    def _from(proto) -> "Epoch":
        return Epoch(proto.epoch, proto.train_loss, proto.train_accuracy,
                     proto.validation_accuracy, proto.seconds)


@dataclasses.dataclass
class Job:
    job_id: str
    model_name: str
    state: str
    reason: str
    model_version: int
    total_epochs: int
    epochs: List[Epoch]
    description: str
    use_batchnorm: bool
    weight_init_std: float

    @property
    def done(self) -> bool:
        return self.state in _TERMINAL

    @staticmethod
    def _from(proto) -> "Job":
        network = proto.request.network
        return Job(proto.job_id, proto.model_name, _training.JobState.Name(proto.state),
                   proto.reason, proto.model_version, proto.total_epochs,
                   [Epoch._from(e) for e in proto.epochs], proto.request.description,
                   network.use_batchnorm if network.HasField("use_batchnorm") else True,
                   network.weight_init.std)


@dataclasses.dataclass
class Prediction:
    probabilities: np.ndarray  # float32 [N, classes]
    classes: np.ndarray        # int32 [N]
    model_name: str
    model_version: int


@dataclasses.dataclass
class Evaluation:
    loss: float
    accuracy: float
    per_class_accuracy: np.ndarray
    confusion_matrix: np.ndarray  # int64 [classes, classes]: row true, column predicted
    num_examples: int
    model_name: str
    model_version: int


@dataclasses.dataclass
class Histogram:
    """Equal-width bins: counts[i] covers [edges[i], edges[i+1]) (the last
    bin includes its right edge); below/above: values outside a given range."""
    edges: np.ndarray
    counts: np.ndarray
    below: int
    above: int
    mean: float
    std: float
    count: int

    @staticmethod
    def _from(proto) -> Optional["Histogram"]:
        if proto.count == 0 and not proto.counts:
            return None
        counts = np.asarray(proto.counts, dtype=np.int64)
        return Histogram(np.linspace(proto.min, proto.max, len(counts) + 1), counts,
                         proto.below, proto.above, proto.mean, proto.std, proto.count)


@dataclasses.dataclass
class LayerActivations:
    """One hidden layer of an Inspect: its outputs' histograms (batchnorm is
    None without BatchNorm) and its BatchNorm parameters (empty without)."""
    layer: int
    affine: Histogram
    batchnorm: Optional[Histogram]
    activation: Histogram
    gamma: np.ndarray
    beta: np.ndarray
    running_mean: np.ndarray
    running_var: np.ndarray


@dataclasses.dataclass
class Model:
    name: str
    versions: List[int]
    aliases: Dict[str, int]
    latest_version: int


@dataclasses.dataclass
class ModelVersion:
    model_name: str
    version: int
    job_id: str
    input_size: int
    hidden_sizes: List[int]
    output_size: int
    activation: str
    use_batchnorm: bool
    bn_eps: float
    aliases: List[str]
    # Whether INFERENCE-mode predictions come from the BatchNorm-folded network.
    served_folded: bool
    # W1, b1, gamma1, beta1, running_mean1, running_var1, ... when asked for.
    tensors: Dict[str, np.ndarray]


def _tensor(array) -> "_types.Tensor":
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError("expected a 2-D array [rows, features], got shape %s" % (array.shape,))
    tensor = _types.Tensor()
    tensor.shape.extend(array.shape)
    tensor.values.extend(array.ravel().tolist())
    return tensor


def _array(tensor) -> np.ndarray:
    return np.asarray(tensor.values, dtype=np.float32).reshape(tuple(tensor.shape))


def _model_ref(name, version=None, alias=None) -> "_types.ModelRef":
    ref = _types.ModelRef(name=name)
    if version is not None and alias is not None:
        raise ValueError("give a version or an alias, not both")
    if version is not None:
        ref.version = int(version)
    elif alias is not None:
        ref.alias = alias
    return ref


def _data_spec(dataset, split, limit) -> "_types.DataSpec":
    spec = _types.DataSpec()
    spec.builtin.name = dataset
    spec.builtin.split = _SPLITS[split]
    spec.builtin.limit = limit
    return spec


def _fill_network(network, hidden_sizes, activation, weight_init_std, batchnorm,
                  input_size: int = 0) -> None:
    """NetworkConfig fields; weight_init_std as Client.train takes it."""
    network.hidden_sizes.extend(hidden_sizes)
    network.activation = _ACTIVATIONS[activation]
    network.use_batchnorm = batchnorm
    if input_size:
        network.input_size = input_size
    if weight_init_std in (None, "he"):
        network.weight_init.kind = _types.WeightInit.HE
    elif weight_init_std == "xavier":
        network.weight_init.kind = _types.WeightInit.XAVIER
    else:
        network.weight_init.kind = _types.WeightInit.STD
        network.weight_init.std = float(weight_init_std)


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds "authorization: Bearer <token>" to every call of a channel."""

    def __init__(self, token: str):
        self._metadata = ("authorization", "Bearer " + token)

    def _with_token(self, details):
        metadata = list(details.metadata or []) + [self._metadata]
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else \
            _CallDetails(details.method, details.timeout, metadata, details.credentials,
                         getattr(details, "wait_for_ready", None),
                         getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)


class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                         "compression")), grpc.ClientCallDetails):
    pass


# Every channel balances calls over all the addresses its target resolves to
# (gRPC's default pick_first would send every call to the first).
ROUND_ROBIN_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
_TARGET_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:", "xds:")


def grpc_target(target: Union[str, Sequence[str]]) -> str:
    """The gRPC target for `target`: one "host:port" or a scheme target
    ("dns:///bnserve-grpc.ml.svc.cluster.local:50051", "ipv4:...") as it is;
    a list of "IP:port" (or one string of them joined by commas) as one
    multi-address target ("ipv4:10.0.0.1:50051,10.0.0.2:50051"; IPv6 in
    brackets: "ipv6:[::1]:50051,..."). ValueError for an entry without a
    port, a host name in a list (use dns:///NAME:PORT, whose every address is
    used) or a list mixing IPv4 and IPv6."""
    if isinstance(target, str):
        target = target.strip()
        if not target:
            raise ValueError("empty target")
        if target.lower().startswith(_TARGET_SCHEMES) or "," not in target:
            return target
        entries = target.split(",")
    else:
        entries = list(target)
        if not entries:
            raise ValueError("empty target list")
        if len(entries) == 1:
            return grpc_target(entries[0])
    addresses, families = [], set()
    for entry in entries:
        entry = entry.strip()
        host, sep, port = entry.rpartition(":")
        if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError("target entry %r is not host:port with a port 1-65535" % entry)
        if host.lower() == "localhost":
            host = "127.0.0.1"
        bracketed = host.startswith("[") and host.endswith("]")
        try:
            address = ipaddress.ip_address(host[1:-1] if bracketed else host)
        except ValueError:
            address = None
        if address is None or (address.version == 6) != bracketed:
            raise ValueError("target entry %r: a list takes IP addresses (IPv6 in brackets); for "
                             "a host name with several addresses use dns:///NAME:PORT" % entry)
        families.add(address.version)
        addresses.append("%s:%s" % (host, port))
    if len(families) > 1:
        raise ValueError("target list %r mixes IPv4 and IPv6 addresses" % (entries,))
    return ("ipv4:" if families == {4} else "ipv6:") + ",".join(addresses)


def _list_authority(target: str) -> Optional[str]:
    """The first address of a multi-address ipv4:/ipv6: target: the
    authority (and TLS peer name) of its calls, which gRPC would otherwise
    take to be the whole list. None for any other target."""
    scheme, _, addresses = target.partition(":")
    if scheme.lower() not in ("ipv4", "ipv6") or "," not in addresses:
        return None
    return addresses.split(",")[0]


def _read(path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


class Client:
    """A connection to one bnserve server, or to several replicas.

    target: "host:port"; a list of "IP:port" (or one comma-separated string)
    of replicas; or a gRPC target such as
    "dns:///bnserve-grpc.ml.svc.cluster.local:50051" (see grpc_target). Calls
    are balanced round-robin over every address (ROUND_ROBIN_SERVICE_CONFIG).
    token: a bearer token sent with every call (the server's --auth_tokens);
    default $BNSERVE_TOKEN. tls_ca: PEM file of the CA that signed the
    server's certificate: connect with TLS. tls_cert, tls_key: the client's
    certificate and key for mutual TLS (--tls_client_ca on the server)."""

    def __init__(self, target: Union[str, Sequence[str]] = "127.0.0.1:50051",
                 timeout: float = 60.0,
                 channel: Optional[grpc.Channel] = None, max_message_mb: int = 64,
                 token: Optional[str] = None, tls_ca: Optional[str] = None,
                 tls_cert: Optional[str] = None, tls_key: Optional[str] = None):
        options = [("grpc.max_receive_message_length", max_message_mb << 20),
                   ("grpc.max_send_message_length", max_message_mb << 20),
                   ("grpc.service_config", ROUND_ROBIN_SERVICE_CONFIG)]
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if channel is None:
            target = grpc_target(target)
            authority = _list_authority(target)
            if authority is not None:
                options.append(("grpc.default_authority", authority))
            if tls_ca is not None or tls_cert is not None:
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=_read(tls_ca), private_key=_read(tls_key),
                    certificate_chain=_read(tls_cert))
                channel = grpc.secure_channel(target, credentials, options=options)
            else:
                channel = grpc.insecure_channel(target, options=options)
        self._raw_channel = channel
        if token is None:
            token = os.environ.get("BNSERVE_TOKEN") or None
        if token:
            channel = grpc.intercept_channel(channel, _BearerToken(token))
        self._channel = channel
        self._timeout = timeout
        self._training = _training_grpc.TrainingServiceStub(self._channel)
        self._inference = _inference_grpc.InferenceServiceStub(self._channel)
        self._registry = _registry_grpc.ModelRegistryStub(self._channel)
        self._v2 = _v2_grpc.GRPCInferenceServiceStub(self._channel)

    def close(self):
        self._raw_channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ---- training -------------------------------------------------------------
    def train(self, model: str, dataset: str = "mnist-digits", limit: int = 0,
              epochs: int = 20, batch_size: int = 100,
              hidden_sizes: Sequence[int] = (100, 100, 100, 100, 100),
              activation: str = "relu", weight_init_std=None, batchnorm: bool = True,
              optimizer: str = "sgd", learning_rate: Optional[float] = None, seed: int = 0,
              validation_split: Optional[str] = None, validation_limit: int = 0,
              description: str = "") -> Job:
        """Submits a training job on a built-in data set and returns it (QUEUED).

        weight_init_std: a number (the book's weight_init_std), "he", "xavier"
        or None (He)."""
        request = _training.TrainRequest(model_name=model, epochs=epochs,
                                         batch_size=batch_size, seed=seed,
                                         description=description)
        _fill_network(request.network, hidden_sizes, activation, weight_init_std, batchnorm)
        request.optimizer.type = _OPTIMIZERS[optimizer]
        if learning_rate is not None:
            request.optimizer.learning_rate = learning_rate
        request.train_data.CopyFrom(_data_spec(dataset, "train", limit))
        if validation_split is not None:
            request.validation_data.CopyFrom(
                _data_spec(dataset, validation_split, validation_limit))
        return Job._from(self._training.Train(request, timeout=self._timeout))

    def job(self, job_id: str) -> Job:
        return Job._from(self._training.GetJob(_training.GetJobRequest(job_id=job_id),
                                               timeout=self._timeout))

    def jobs(self, model: Optional[str] = None) -> List[Job]:
        """Every job (of `model` when given), following the pages."""
        jobs, token = [], ""
        while True:
            response = self._training.ListJobs(
                _training.ListJobsRequest(model_name=model or "", page_size=1000,
                                          page_token=token), timeout=self._timeout)
            jobs += [Job._from(j) for j in response.jobs]
            token = response.next_page_token
            if not token:
                return jobs

    def cancel(self, job_id: str) -> Job:
        return Job._from(self._training.CancelJob(_training.CancelJobRequest(job_id=job_id),
                                                  timeout=self._timeout))

    def watch(self, job_id: str) -> Iterator[Epoch]:
        """The job's epochs as the server reports them (history first), until it ends."""
        for event in self._training.WatchJob(_training.WatchJobRequest(job_id=job_id)):
            if event.HasField("epoch"):
                yield Epoch._from(event.epoch)

    def wait(self, job_id: str) -> Job:
        """Blocks until the job ends; returns it in its terminal state."""
        for event in self._training.WatchJob(_training.WatchJobRequest(job_id=job_id)):
            if event.HasField("finished"):
                return Job._from(event.finished)
        return self.job(job_id)

    # ---- inference ------------------------------------------------------------
    def predict(self, model: str, x, version: Optional[int] = None,
                alias: Optional[str] = None, bn_mode: str = "inference") -> Prediction:
        """bnserve.v1 Predict of the rows of `x` ([N, features])."""
        request = _inference.PredictRequest(model=_model_ref(model, version, alias),
                                            inputs=_tensor(x), bn_mode=_BN_MODES[bn_mode])
        response = self._inference.Predict(request, timeout=self._timeout)
        return Prediction(_array(response.probabilities),
                          np.asarray(response.predicted_classes, dtype=np.int32),
                          response.model_name, response.model_version)

    def infer(self, model: str, x, version: str = "", bn_mode: str = "inference",
              outputs: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
        """The Open Inference Protocol's ModelInfer (raw contents): output name -> array."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        request = _v2.ModelInferRequest(model_name=model, model_version=str(version))
        request.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
        request.raw_input_contents.append(x.tobytes())
        request.parameters["bn_mode"].string_param = bn_mode
        for name in outputs or ():
            request.outputs.add(name=name)
        response = self._v2.ModelInfer(request, timeout=self._timeout)
        dtypes = {"FP32": np.float32, "INT32": np.int32}
        result = {}
        for output, raw in zip(response.outputs, response.raw_output_contents):
            result[output.name] = np.frombuffer(raw, dtype=dtypes[output.datatype]).reshape(
                tuple(output.shape))
        return result

    def evaluate(self, model: str, dataset: str = "mnist-digits", split: str = "test",
                 limit: int = 0, version: Optional[int] = None, alias: Optional[str] = None,
                 bn_mode: str = "inference") -> Evaluation:
        request = _inference.EvaluateRequest(model=_model_ref(model, version, alias),
                                             data=_data_spec(dataset, split, limit),
                                             bn_mode=_BN_MODES[bn_mode])
        r = self._inference.Evaluate(request, timeout=self._timeout)
        classes = r.num_classes
        return Evaluation(r.loss, r.accuracy, np.asarray(r.per_class_accuracy),
                          np.asarray(r.confusion_matrix, dtype=np.int64).reshape(classes,
                                                                                  classes),
                          r.num_examples, r.model_name, r.model_version)

    def inspect(self, model: Optional[str] = None, version: Optional[int] = None,
                alias: Optional[str] = None, hidden_sizes: Sequence[int] = (100,) * 5,
                activation: str = "sigmoid", weight_init_std=1.0, batchnorm: bool = False,
                input_size: int = 100, x=None, dataset: Optional[str] = None,
                split: str = "test", limit: int = 0, random_rows: int = 1000,
                bn_mode: str = "inference", bins: int = 30, value_range=None,
                seed: int = 0) -> List[LayerActivations]:
        """Each hidden layer's output histograms (InferenceService.Inspect).

        The network: a stored version of `model`, or without `model` an
        untrained one of the given config (the book's activation experiment
        by default: 5 x 100 sigmoid, weight std 1, on 1000 N(0, 1) rows).
        The batch: rows `x`, a built-in `dataset`, or `random_rows` N(0, 1)
        rows. value_range: (min, max) for every histogram, else each its own."""
        request = _inference.InspectRequest(bn_mode=_BN_MODES[bn_mode], bins=bins, seed=seed)
        if model is not None:
            request.model.CopyFrom(_model_ref(model, version, alias))
        else:
            request.untrained.seed = seed
            _fill_network(request.untrained.network, hidden_sizes, activation, weight_init_std,
                          batchnorm, input_size)
        if x is not None:
            request.inputs.CopyFrom(_tensor(x))
        elif dataset is not None:
            request.data.CopyFrom(_data_spec(dataset, split, limit))
        else:
            request.random_normal_rows = random_rows
        if value_range is not None:
            request.range_min, request.range_max = float(value_range[0]), float(value_range[1])
        response = self._inference.Inspect(request, timeout=self._timeout)
        return [LayerActivations(layer.layer, Histogram._from(layer.affine_output),
                                 Histogram._from(layer.batchnorm_output)
                                 if layer.HasField("batchnorm_output") else None,
                                 Histogram._from(layer.activation_output),
                                 np.asarray(layer.gamma, dtype=np.float32),
                                 np.asarray(layer.beta, dtype=np.float32),
                                 np.asarray(layer.running_mean, dtype=np.float32),
                                 np.asarray(layer.running_var, dtype=np.float32))
                for layer in response.layers]

    # ---- registry -------------------------------------------------------------
    def models(self) -> List[Model]:
        response = self._registry.ListModels(_registry.ListModelsRequest(),
                                             timeout=self._timeout)
        return [Model(m.name, list(m.versions), dict(m.aliases), m.latest_version)
                for m in response.models]

    def get_model(self, model: str, version: Optional[int] = None,
                  alias: Optional[str] = None, parameters: bool = False) -> ModelVersion:
        request = _registry.GetModelRequest(model=_model_ref(model, version, alias),
                                            include_parameters=parameters)
        v = self._registry.GetModel(request, timeout=self._timeout)
        n = v.network
        return ModelVersion(v.model_name, v.version, v.job_id, n.input_size,
                            list(n.hidden_sizes), n.output_size,
                            _types.Activation.Name(n.activation).lower(),
                            n.use_batchnorm if n.HasField("use_batchnorm") else True,
                            n.bn_eps if n.HasField("bn_eps") else 1e-6, list(v.aliases),
                            v.served_folded, {t.name: _array(t.tensor) for t in v.tensors})

    def set_alias(self, model: str, alias: str, version: int) -> Model:
        m = self._registry.SetAlias(
            _registry.SetAliasRequest(model_name=model, alias=alias, version=version),
            timeout=self._timeout)
        return Model(m.name, list(m.versions), dict(m.aliases), m.latest_version)

    def delete_version(self, model: str, version: int) -> None:
        self._registry.DeleteModelVersion(
            _registry.DeleteModelVersionRequest(model_name=model, version=version),
            timeout=self._timeout)

    def export(self, model: str, path: Optional[str] = None, version: Optional[int] = None,
               alias: Optional[str] = None, format: str = "bnserve",
               fold_batchnorm: bool = False) -> bytes:
        """ExportModel: the version as bytes, also written to `path`.

        format "bnserve": the binary ModelVersion that import_model takes;
        "onnx": an ONNX model (fold_batchnorm: the BatchNorm-folded graph)."""
        formats = {"bnserve": _registry.ExportModelRequest.BNSERVE,
                   "onnx": _registry.ExportModelRequest.ONNX}
        exported = self._registry.ExportModel(
            _registry.ExportModelRequest(model=_model_ref(model, version, alias),
                                         format=formats[format],
                                         fold_batchnorm=fold_batchnorm),
            timeout=self._timeout)
        data = exported.onnx_model if format == "onnx" else exported.SerializeToString()
        if path is not None:
            with open(path, "wb") as f:
                f.write(data)
        return data

    def import_model(self, data: bytes, as_name: str = "") -> ModelVersion:
        version = _registry.ModelVersion()
        version.ParseFromString(data)
        stored = self._registry.ImportModel(
            _registry.ImportModelRequest(model=version, model_name=as_name),
            timeout=self._timeout)
        return self.get_model(stored.model_name, version=stored.version)
