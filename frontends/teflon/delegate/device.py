"""The delegate's Python half (Mesa: ``src/gallium/frontends/teflon/tfl_device.c``).

One :class:`Library` per loaded ``libteflon.so`` (its cffi ``ffi``/``lib``) registers the
callbacks and owns what the host created through it: delegates, keyed by the address of their
``TfLiteDelegate``, and partition kernels, keyed by a small non-zero id that TFLite keeps as the
node's ``user_data``. Addresses coming back from the host are looked up, never dereferenced as
Python handles, so a stray pointer is an error message, not a crash.

The flow follows Teflon: Prepare checks the ABI, views the context as a model, asks both gates
for every node of the execution plan and hands the claimed ones to
``ReplaceNodeSubsetsWithDelegateKernels``; TFLite partitions them and calls ``init`` per
partition (inside that call), which compiles once (``subgraph_create`` -> serialize -> a context
deserializes); ``invoke`` copies inputs in, runs, copies outputs out; ``free`` releases.
Every callback catches everything and reports through ``ctx->ReportError``: a Python exception
must never reach cffi, which would print it and return the default value (``kTfLiteOk``).
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
import traceback
from typing import Any

import numpy as np

from ....gallium.device import MlContext, MlDevice, MlSubgraph
from ....gallium.loader import create_device, find_device
from ..partition import NodeSupport, Partition, make_partition, query_support
from ..support import format_support_table
from . import abi
from .cache import BlobCache, blob_key
from .context_view import ContextView, execution_plan, int_array, read_context
from .options import DEBUG_ENV, DebugFlags, DelegateOptions, OptionError
from .stats import DelegateStats, PartitionStats


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def store_output(dst: np.ndarray, value: np.ndarray, index: int) -> None:
    """Copy a device result into TFLite's buffer, refusing values the tensor cannot hold."""
    src = np.asarray(value)
    if src.size != dst.size:
        raise ValueError(f"tensor {index}: device returned {src.size} elements for {dst.size}")
    if src.dtype != dst.dtype:
        info = np.iinfo(dst.dtype)
        if src.size and (src.min() < info.min or src.max() > info.max):
            raise ValueError(
                f"tensor {index}: device value range [{src.min()}, {src.max()}] exceeds {dst.dtype}"
            )
    np.copyto(dst, src.reshape(dst.shape), casting="unsafe")


class PartitionKernel:
    """One delegated partition: compiled once at init, invoked many times."""

    def __init__(
        self,
        number: int,
        delegate: TeflonDelegate,
        partition: Partition,
        node_ids: tuple[int, ...],
        context: MlContext,
        subgraph: MlSubgraph,
        compile_ms: float,
    ) -> None:
        self.number = number
        self.delegate = delegate
        self.partition = partition
        self.node_ids = node_ids
        self.context = context
        self.subgraph = subgraph
        self.compile_ms = compile_ms
        self.lock = threading.Lock()  # one invoke of a partition at a time
        # Fixed for the kernel's life (a resize re-applies the delegate): index -> (dtype,
        # shape, bytes) of every partition input and output, so an invoke only checks them.
        tensors = {t.index: t for op in partition.ops for t in (*op.inputs, *op.outputs) if t}
        self.layout = {
            i: (tensors[i].type.numpy, tensors[i].shape, tensors[i].size * tensors[i].type.size)
            for i in (*partition.inputs, *partition.outputs)
        }
        self.invokes = 0
        self.last_ms = 0.0
        self.total_ms = 0.0
        self.counters: tuple = ()

    def label(self) -> str:
        nodes = self.node_ids
        span = f"{nodes[0]}" if len(nodes) == 1 else f"{nodes[0]}..{nodes[-1]}"
        return f"partition {self.number} (nodes {span}, {len(nodes)} ops)"

    def check_shapes(self, ffi: Any, ctx: Any) -> None:
        """The TFLite tensors still have the shapes the partition was compiled for."""
        for index, (_, want, _) in self.layout.items():
            shape = int_array(ffi, ctx.tensors[index].dims)
            if tuple(shape) != tuple(want):
                raise ValueError(
                    f"tensor {index} has shape {list(shape)}, the partition was compiled for "
                    f"{list(want)}"
                )

    def view(self, ffi: Any, ctx: Any, index: int) -> np.ndarray:
        """TFLite's buffer of a partition tensor. Taken anew on every invoke (the arena may
        move between invokes) and never kept past it."""
        dtype, shape, size = self.layout[index]
        t = ctx.tensors[index]
        if t.data.raw == ffi.NULL or t.bytes != size:
            raise ValueError(f"tensor {index}: {t.bytes} bytes at {t.data.raw}, expected {size}")
        return np.frombuffer(ffi.buffer(t.data.raw, size), dtype=dtype).reshape(shape)

    def invoke(self, ffi: Any, ctx: Any) -> None:
        with self.lock:
            start = time.perf_counter()
            # Inputs are copied so that nothing the device keeps refers to TFLite's memory.
            feeds = {i: np.array(self.view(ffi, ctx, i)) for i in self.partition.inputs}
            self.context.subgraph_invoke(self.subgraph, feeds)
            results = self.context.subgraph_read_outputs(self.subgraph)
            produced = dict(zip((t.index for t in self.subgraph.outputs), results, strict=True))
            for index in self.partition.outputs:
                if index not in produced:
                    raise ValueError(f"the device produced no value for output tensor {index}")
                store_output(self.view(ffi, ctx, index), produced[index], index)
            elapsed = (time.perf_counter() - start) * 1e3
            self.counters = tuple(self.context.last_counters())
            self.invokes += 1
            self.last_ms = elapsed
            self.total_ms += elapsed
        if self.delegate.options.debug.verbose:
            _log(f"teflon: invoked graph, took {elapsed:.3f} ms")

    def stats(self) -> PartitionStats:
        return PartitionStats(
            self.number,
            self.node_ids,
            self.partition.inputs,
            self.partition.outputs,
            self.compile_ms,
            self.invokes,
            self.last_ms,
            self.total_ms,
            self.counters,
        )

    def destroy(self) -> None:
        self.context.destroy()


class TeflonDelegate:
    """One ``TfLiteDelegate`` (Mesa: ``struct teflon_delegate``)."""

    def __init__(self, library: Library, options: DelegateOptions) -> None:
        self.library = library
        self.options = options
        self.info = find_device(options.device)
        self.device: MlDevice = create_device(self.info)
        self.cache = BlobCache(options.cache) if options.cache else None
        ffi, lib = library.ffi, library.lib
        self.struct = ffi.new("TfLiteDelegate *")  # zero-filled: no buffer-handle callbacks
        self.struct.Prepare = lib.teflon_delegate_prepare
        # No dynamic-tensor flags: partitions are compiled for fixed shapes, and without
        # kTfLiteDelegateFlagsAllowDynamicTensors TFLite re-applies the delegate after a resize.
        self.struct.flags = lib.kTfLiteDelegateFlagsNone
        self.address = int(ffi.cast("uintptr_t", self.struct))
        self.kernels: dict[int, PartitionKernel] = {}
        self._pending: dict[int, tuple[ContextView, list[NodeSupport]]] = {}
        self._numbers = itertools.count()
        self.claimed: tuple[int, ...] = ()
        self.plan_size = 0
        self.abi_problem: str | None = None
        if options.debug.verbose:
            _log(f"Teflon delegate: loaded {self.info.driver} driver")
            runtime = abi.python_runtime()
            _log(
                f"teflon: device {self.info.name} ({self.info.backend}); runtime "
                f"{runtime.describe() if runtime else 'not a Python host'}"
            )

    # -- Prepare ------------------------------------------------------------------------------

    def prepare(self, ctx: Any) -> int:
        ffi, lib = self.library.ffi, self.library.lib
        try:
            plan = execution_plan(ffi, ctx)
            problem = abi.check_context(ffi, ctx, list(plan))
            self.abi_problem = problem
            self.plan_size = len(plan)
            self.claimed = ()
            if problem:
                message = (
                    f"teflon: the TensorFlow Lite runtime does not match the delegate's ABI "
                    f"({problem})"
                )
                return self._fall_back(ctx, message)
            view = read_context(ffi, lib, ctx, plan)
            support = query_support(view.model, self.device)
            if self.options.debug.verbose:
                _log(format_support_table(view.model, support))
            claimed = [view.node_ids[s.op.index] for s in support if s.supported]
            self.claimed = tuple(claimed)
            if not claimed:
                return lib.kTfLiteOk
            nodes = ffi.new("TfLiteIntArray *", {"size": len(claimed), "data": claimed})
            key = int(ffi.cast("uintptr_t", ctx))
            self._pending[key] = (view, support)
            try:
                status = lib.teflon_replace_node_subsets(ctx, self.struct, nodes)
            finally:
                del self._pending[key]
            # On failure TFLite restores the plan only for kTfLiteDelegateError.
            return lib.kTfLiteOk if status == lib.kTfLiteOk else lib.kTfLiteDelegateError
        except Exception as e:
            message = f"teflon: Prepare failed: {self.library.describe(e, self.options.debug)}"
            return self._fall_back(ctx, message)

    def _fall_back(self, ctx: Any, message: str) -> int:
        lib = self.library.lib
        self.claimed = ()
        if self.options.strict:
            self.library.report(ctx, message + "; failing (strict)")
            return lib.kTfLiteDelegateError
        _log(f"{message}; claiming no nodes (option strict=1 fails instead)")
        return lib.kTfLiteOk

    # -- partitions ---------------------------------------------------------------------------

    def init_partition(self, ctx: Any, params: Any) -> PartitionKernel:
        ffi = self.library.ffi
        pending = self._pending.get(int(ffi.cast("uintptr_t", ctx)))
        if pending is None:
            raise RuntimeError("partition init outside the delegate's Prepare")
        view, support = pending
        node_ids = int_array(ffi, params.nodes_to_replace)
        outputs = int_array(ffi, params.output_tensors)
        positions = [view.position(n) for n in node_ids]
        part = make_partition(view.model, support, positions, outputs)
        number = next(self._numbers)
        verbose = self.options.debug.verbose
        start = time.perf_counter()
        if verbose:
            _log(self._graph_dump(ctx, part))
        blob = None
        key = blob_key(self.info.name, part.ops) if self.cache else ""
        if self.cache:
            blob = self.cache.load(key)
        if blob is None:
            blob = self.device.subgraph_create(part.ops).serialize()
            if self.cache:
                self.cache.store(key, blob)
        context = self.device.create_context()
        try:
            subgraph = context.subgraph_deserialize(blob)
        except BaseException:
            context.destroy()
            raise
        compile_ms = (time.perf_counter() - start) * 1e3
        if verbose:
            _log(f"teflon: compiled graph, took {compile_ms:.3f} ms")
        kernel = PartitionKernel(number, self, part, tuple(node_ids), context, subgraph, compile_ms)
        return kernel

    def _graph_dump(self, ctx: Any, part: Partition) -> str:
        """Mesa's dump_graph: header, tensor table, operation table."""
        lines = [
            f"teflon: compiling graph: {ctx.tensors_size} tensors {len(part.ops)} operations",
            f"{'idx':>4} {'scale':>10} {'zp':>5} {'has_data':<8} size",
        ]
        seen: dict[int, Any] = {}
        for op in part.ops:
            for t in (*op.inputs, *op.outputs):
                if t is not None:
                    seen.setdefault(t.index, t)
        for index in sorted(seen):
            t = seen[index]
            dims = "x".join(map(str, t.dims))
            has = "yes" if t.is_constant else "no"
            lines.append(f"{index:>4} {t.scale:>10.6f} {t.zero_point:>5} {has:<8} {dims}")
        lines.append(f"{'idx':>4} {'type':<16} {'inputs':<20} outputs")
        for op in part.ops:
            ins = ",".join(str(t.index) for t in op.inputs if t is not None)
            outs = ",".join(str(t.index) for t in op.outputs)
            lines.append(f"{op.index:>4} {op.type.name:<16} {ins:<20} {outs}")
        return "\n".join(lines)

    def stats(self) -> DelegateStats:
        kernels = sorted(self.kernels.values(), key=lambda k: k.number)
        return DelegateStats(
            self.info.name,
            self.claimed,
            self.plan_size,
            tuple(k.stats() for k in kernels),
            self.abi_problem,
        )

    def destroy(self) -> None:
        for kernel in list(self.kernels.values()):
            kernel.destroy()
        self.kernels.clear()
        self.device.destroy()


class Library:
    """One loaded ``libteflon.so``: registers its callbacks and owns its delegates."""

    def __init__(self, ffi: Any, lib: Any, path: str, module: str) -> None:
        self.ffi = ffi
        self.lib = lib
        self.path = path
        self.module = module
        self.debug = DebugFlags.parse(os.environ.get(DEBUG_ENV, ""), where=None)
        self._lock = threading.Lock()
        self._delegates: dict[int, TeflonDelegate] = {}
        self._kernels: dict[int, PartitionKernel] = {}
        self._ids = itertools.count(1)  # 0 would be NULL, TFLite's "no user data"
        self._install()

    # -- helpers ------------------------------------------------------------------------------

    def describe(self, e: BaseException, debug: DebugFlags | None = None) -> str:
        """One line, plus the traceback with the ``traceback`` debug flag."""
        if (debug or self.debug).traceback:
            return one_line(e) + "\n" + "".join(traceback.format_exception(e)).rstrip()
        return one_line(e)

    def report(self, ctx: Any, message: str) -> None:
        self.lib.teflon_report_error(ctx, message.encode(errors="replace"))

    def _delegate_of(self, pointer: Any) -> TeflonDelegate:
        delegate = self._delegates.get(int(self.ffi.cast("uintptr_t", pointer)))
        if delegate is None:
            raise LookupError(f"delegate {pointer} was not created by {self.path}")
        return delegate

    def _kernel_of(self, user_data: Any) -> PartitionKernel:
        kernel = self._kernels.get(int(self.ffi.cast("uintptr_t", user_data)))
        if kernel is None:
            raise LookupError("the node has no compiled partition (its init failed)")
        return kernel

    @staticmethod
    def _last_resort(exception: type, value: BaseException, tb: Any) -> None:
        """cffi's ``onerror``: only reached if reporting itself failed."""
        _log(f"teflon: internal error in a callback: {one_line(value)}")

    # -- callbacks ----------------------------------------------------------------------------

    def _install(self) -> None:
        ffi, lib = self.ffi, self.lib
        status_error = lib.kTfLiteError
        last = self._last_resort

        @ffi.def_extern(name="teflon_py_create_delegate", onerror=last)
        def create(keys, values, count, report_error):
            return self.create_delegate(keys, values, count, report_error)

        @ffi.def_extern(name="teflon_py_destroy_delegate", onerror=last)
        def destroy(pointer):
            self.destroy_delegate(pointer)

        @ffi.def_extern(name="teflon_delegate_prepare", error=status_error, onerror=last)
        def prepare_delegate(ctx, pointer):
            try:
                return self._delegate_of(pointer).prepare(ctx)
            except Exception as e:
                self.report(ctx, f"teflon: Prepare failed: {self.describe(e)}")
                return lib.kTfLiteDelegateError

        @ffi.def_extern(name="teflon_partition_init", onerror=last)
        def init(ctx, buffer, length):
            delegate = None
            try:
                params = ffi.cast("TfLiteDelegateParams *", buffer)
                delegate = self._delegate_of(params.delegate)
                kernel = delegate.init_partition(ctx, params)
                with self._lock:
                    kernel_id = next(self._ids)
                    self._kernels[kernel_id] = kernel
                    delegate.kernels[kernel_id] = kernel
                return ffi.cast("void *", kernel_id)
            except Exception as e:
                debug = delegate.options.debug if delegate else None
                self.report(ctx, f"teflon: compiling a partition failed: {self.describe(e, debug)}")
                return ffi.NULL

        @ffi.def_extern(name="teflon_partition_free", onerror=last)
        def free(ctx, user_data):
            kernel_id = int(ffi.cast("uintptr_t", user_data))
            with self._lock:
                kernel = self._kernels.pop(kernel_id, None)
                if kernel is not None:
                    kernel.delegate.kernels.pop(kernel_id, None)
            if kernel is not None:
                try:
                    kernel.destroy()
                except Exception as e:
                    _log(f"teflon: freeing {kernel.label()} failed: {self.describe(e)}")

        @ffi.def_extern(name="teflon_partition_prepare", error=status_error, onerror=last)
        def prepare(ctx, node):
            try:
                self._kernel_of(node.user_data).check_shapes(ffi, ctx)
                return lib.kTfLiteOk
            except Exception as e:
                self.report(ctx, f"teflon: preparing a partition failed: {self.describe(e)}")
                return lib.kTfLiteError

        @ffi.def_extern(name="teflon_partition_invoke", error=status_error, onerror=last)
        def invoke(ctx, node):
            kernel = None
            try:
                kernel = self._kernel_of(node.user_data)
                kernel.invoke(ffi, ctx)
                return lib.kTfLiteOk
            except Exception as e:
                where = kernel.label() if kernel else "a partition"
                device = kernel.delegate.info.name if kernel else "the device"
                debug = kernel.delegate.options.debug if kernel else None
                self.report(ctx, f"teflon: {where} failed on {device}: {self.describe(e, debug)}")
                return lib.kTfLiteError

    # -- create / destroy ---------------------------------------------------------------------

    def create_delegate(self, keys: Any, values: Any, count: int, report_error: Any) -> Any:
        ffi = self.ffi
        try:
            pairs = [
                (ffi.string(keys[i]).decode(), ffi.string(values[i]).decode()) for i in range(count)
            ]
            delegate = TeflonDelegate(self, DelegateOptions.parse(pairs, os.environ))
        except Exception as e:
            known = isinstance(e, OptionError | LookupError)
            message = f"teflon: {' '.join(str(e).split()) if known else self.describe(e)}"
            if report_error != ffi.NULL:
                report_error(message.encode(errors="replace"))
            else:
                _log(message)
            return ffi.NULL
        with self._lock:
            self._delegates[delegate.address] = delegate
        return delegate.struct

    def destroy_delegate(self, pointer: Any) -> None:
        address = int(self.ffi.cast("uintptr_t", pointer))
        with self._lock:
            delegate = self._delegates.pop(address, None)
            if delegate is not None:
                for kernel_id in list(delegate.kernels):
                    self._kernels.pop(kernel_id, None)
        if delegate is None:
            _log(f"teflon: destroy of an unknown delegate {pointer}")
            return
        try:
            delegate.destroy()
        except Exception as e:
            _log(f"teflon: destroying the delegate failed: {self.describe(e)}")

    def stats(self, address: int) -> DelegateStats:
        delegate = self._delegates.get(address)
        if delegate is None:
            raise LookupError(f"no teflon delegate at {address:#x}")
        return delegate.stats()
