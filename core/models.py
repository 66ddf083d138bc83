"""Loading the three face networks and running them fast on the CPU.

A :class:`TaskModel` pairs a Keras model with its card (task, :class:`FaceSpec`,
class names). ``prepare`` turns a frame plus face boxes into the input batch with
the shared preprocessing; ``predict`` runs the network. With the TensorFlow backend
the forward pass is a ``tf.function`` over the Keras model, frozen for the app's analysis
and cached on disk (:mod:`core.graph_cache`; ``python -m benchmarks.models``), with no
conversion to another format that could drift from the trained model (and ONNX Runtime or
LiteRT were slower: docs/benchmarks.md).
"""
from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from core import _import_guard  # noqa: F401
from core import graph_cache
from core import tasks as task_facts
from core.card import ModelCard
from core.config import TASKS
from core.preprocess import Box, preprocess_faces
from core.registry import ModelEntry, ModelRegistry
from core.tf_import import import_keras

log = logging.getLogger(__name__)


def keep_loaded_for_good() -> None:
    """For a process that keeps its models until it exits (a batch worker, a CLI run).

    ``gc.freeze()`` takes every object alive now (TensorFlow's modules, the models) out of
    the garbage collector's sight: the interpreter's exit, which otherwise walks them all,
    takes a tenth of the time, and later collections have less to walk.
    Not for the app's server, whose objects of this moment may become garbage later (frozen,
    never freed).
    """
    gc.freeze()


def load_keras_model(path: Path):
    """Load a ``.keras`` file for inference; a clear error names the file when it is bad."""
    keras = import_keras()
    from core import layers  # noqa: F401  (registers the custom layers saved models may contain)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # keras raises many types for corrupt files
        raise ValueError(f"cannot load model {path}: {exc}") from exc


def keras_backend() -> str:
    return import_keras().backend.backend()


def trace_forward(tf, model, input_shape: Sequence[int], name: str | None = None):
    """The model's forward pass as a ``tf.function`` of a uint8 batch (``name``: its input's)."""
    spec = tf.TensorSpec([None, *input_shape], tf.uint8, name=name)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec])


def freeze_graph(tf, model, input_shape: Sequence[int]):
    """The model's forward pass as a frozen ``GraphDef``: a uint8 batch in, outputs out.

    The weights become constants, so the per-call reads and bfloat16 casts of every variable
    fold away; outputs agree with the traced graph's within float rounding.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = trace_forward(tf, model, input_shape, name=graph_cache.INPUT).get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(frozen.graph.as_graph_def(), name="")
        tf.identity(graph.get_tensor_by_name(frozen.outputs[0].name), name=graph_cache.OUTPUT)
    return graph.as_graph_def()


CPU = "/job:localhost/replica:0/task:0/device:CPU:0"
_optimizer_lock = threading.Lock()  # TensorFlow provisions one Grappler cluster at a time


def optimize_graph(tf, graph_def):
    """``graph_def`` placed on the CPU and rewritten by TensorFlow's graph optimizer (Grappler).

    A session runs Grappler on its graph at its first call, in every process: 0.1-0.25 s per
    network here. Run once before the graph goes into the cache, with a session's default
    optimizers and the CPU placement a session gives it, the result computes the same outputs
    bit for bit, and the sessions skip the optimizer (:func:`_session_forward`; ``python -m
    benchmarks.models`` prints the loading cost). Should Grappler fail, the graph is returned
    as it was: correct, only a little slower.
    """
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.grappler import cluster, tf_optimizer

    placed = tf.compat.v1.GraphDef()
    placed.CopyFrom(graph_def)
    for node in placed.node:
        node.device = CPU  # the placement a session would give it: Grappler's CPU rewrites need it
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(placed, name="")
        meta = tf.compat.v1.train.export_meta_graph(graph=graph, clear_devices=False)
    meta.collection_def["train_op"].node_list.value.append(graph_cache.OUTPUT)  # the fetch Grappler keeps
    try:
        with _optimizer_lock:
            local = cluster.Cluster(allow_soft_placement=True, disable_detailed_stats=True, disable_timeline=True)
            try:
                return tf_optimizer.OptimizeGraph(config_pb2.ConfigProto(), meta, cluster=local)
            finally:
                local.Shutdown()
    except Exception as exc:  # noqa: BLE001  (the unoptimized graph still computes the same outputs)
        log.warning("TensorFlow's graph optimizer failed (%s); using the graph unoptimized", exc)
        return graph_def


def _session_forward(tf, graph_def):
    """A frozen, optimized graph run in a session of its own, with its own threads.

    TensorFlow otherwise runs every model of the process on one shared inter-op thread, so
    the Live page's background age and gender re-estimates queued the frame path's emotion
    model behind them (``python -m benchmarks.models``). The graph was optimized once
    (:func:`optimize_graph`), so the session does not optimize it again.
    """
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    threads = tf.config.threading  # limit_inference_threads' choice (0: TensorFlow's default)
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads.get_intra_op_parallelism_threads(),
                                      inter_op_parallelism_threads=threads.get_inter_op_parallelism_threads(),
                                      use_per_session_threads=True)
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    session = tf.compat.v1.Session(graph=graph, config=config)
    inputs = graph.get_tensor_by_name(f"{graph_cache.INPUT}:0")
    outputs = graph.get_tensor_by_name(f"{graph_cache.OUTPUT}:0")
    return lambda batch: session.run(outputs, {inputs: batch})


@dataclass
class TaskModel:
    """One task's network. Outputs: emotion (n, 7) probabilities in ``EMOTIONS`` order;
    age (n,) years; gender (n,) probability that the face is female.

    With TensorFlow, the forward pass is a ``tf.function`` over the Keras model, or with
    ``freeze`` (the app's analysis: :class:`ActiveModels`) that graph frozen and run in a
    session of its own. A frozen model loaded from a file comes from :mod:`core.graph_cache`
    when it was frozen before, and then its Keras model is only read if asked for.
    """

    task: str
    model: object  # the Keras model; None until asked for (keras_model) when the graph came from the cache
    card: ModelCard  # a card's JSON form is read as a card
    entry_id: str = ""
    freeze: bool = False
    path: Path | None = None  # the model file: the Keras model's source and the graph cache's key
    _forward: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.card = ModelCard.from_dict(self.card)
        if self.card.preprocess is None:
            raise KeyError(f"the {self.task} model's card has no 'preprocess'")
        self.spec = self.card.preprocess
        self.info = task_facts.get(self.task)
        self._forward = self._build_forward()

    @classmethod
    def load(cls, path: Path, card: ModelCard | Mapping, entry_id: str = "", freeze: bool = False) -> "TaskModel":
        card, path = ModelCard.from_dict(card), Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        cached = freeze and keras_backend() == "tensorflow"  # the Keras model may not be needed at all
        return cls(card.task, None if cached else load_keras_model(path), card, entry_id, freeze, path)

    @classmethod
    def from_entry(cls, entry: ModelEntry, freeze: bool = False) -> "TaskModel":
        return cls.load(entry.model_path, entry.card, entry.id, freeze)

    @property
    def keras_model(self):
        if self.model is None:
            self.model = load_keras_model(self.path)
        return self.model

    def _build_forward(self):
        shape = self.spec.input_shape
        if keras_backend() != "tensorflow":
            model = self.keras_model
            return lambda batch: np.asarray(model.predict_on_batch(batch))
        import tensorflow as tf

        if not self.freeze:
            traced = trace_forward(tf, self.keras_model, shape)
            return lambda batch: np.asarray(traced(batch))

        def frozen():
            return optimize_graph(tf, freeze_graph(tf, self.keras_model, shape))

        graph_def = frozen() if self.path is None else graph_cache.cached_graph_def(tf, self.path, shape, frozen)
        return _session_forward(tf, graph_def)

    @property
    def class_names(self) -> list[str]:
        # cards from before class_names were recorded: a softmax's class order was fixed, a
        # sigmoid's never named
        fallback = self.info.class_names if self.info.output == task_facts.PROBABILITIES else ()
        return list(self.card.names or fallback)

    def prepare(self, frame: np.ndarray, boxes: Sequence[Box],
                landmarks: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        return preprocess_faces(frame, self.spec, boxes, landmarks)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return self.info.empty_output()
        out = self._forward(np.ascontiguousarray(batch, dtype=np.uint8))
        return self.info.shape_output(out)


class ActiveModels:
    """The active model of each requested task, reloaded when the registry's choice changes.

    ``get()`` is cheap to call per frame: it only re-reads the small active.json
    every ``check_every`` calls and swaps models in under a lock. ``freeze`` (the default):
    frozen graphs from the graph cache, each in a session of its own (the Live page runs its
    models on two threads at once); ``freeze=False``: graphs traced from the Keras models.
    """

    def __init__(self, tasks: Sequence[str] = TASKS, registry: ModelRegistry | None = None,
                 check_every: int = 30, freeze: bool = True) -> None:
        self.tasks = tuple(tasks)
        self.freeze = freeze
        self.registry = registry or ModelRegistry()
        self.check_every = check_every
        self._lock = threading.Lock()
        self._calls = 0
        self._version: str | None = None
        self._models: dict[str, TaskModel] = {}
        self.reload()

    def reload(self) -> None:
        version = self.registry.version()
        models = {t: TaskModel.from_entry(self.registry.active(t), self.freeze) for t in self.tasks}
        with self._lock:
            self._models, self._version = models, version
        log.info("loaded models %s", {t: m.entry_id for t, m in models.items()})

    def get(self) -> dict[str, TaskModel]:
        self._calls += 1
        if self._calls % self.check_every == 0 and self.registry.version() != self._version:
            self.reload()
        with self._lock:
            return dict(self._models)
