#!/usr/bin/env python3
"""An Orrery provider in Python, with grpcio and stubs generated from proto/.

It serves five modules under one namespace (`py` unless --namespace says
otherwise):

    py.greet        {name: String, excited: Bool} -> String
    py.sum          List<Int> -> Int
    py.mean         List<Float> -> Optional<Float>
    py.word_counts  String -> Map<String, Int>
    py.area         Union{circle: {radius: Float},
                          rectangle: {width: Float, height: Float}} -> Float

and goes through the whole provider protocol of proto/orrery/v1/provider.proto:

1. It hosts `orrery.v1.ModuleExecutor` and the standard gRPC health service
   (service name `orrery.v1.ModuleExecutor`, SERVING) on one port.
2. It sends `Register` to the first node that answers and reads the event
   stream until ACTIVE (or FAILED).
3. It attaches a `ControlPlane` stream and heartbeats at the interval the
   node grants. When the stream breaks (the node died, say), the node starts
   shutting down (GOAWAY), or acks say renewals stopped reaching the leader,
   it attaches the same connection to the next node. If the connection
   expired meanwhile, it registers again.
4. On a `DrainRequest` it takes no new calls, finishes the ones in flight,
   then deregisters and exits. On SIGTERM or SIGINT it deregisters and exits.

Everything that happens is printed on stdout as one JSON object per line
(`listening`, `stage`, `registered`, `attached`, `detached`, `executed`,
`drain`, `expired`, `deregistered`, `error`), so that scripts and tests can
follow it.

Exit codes: 0 after deregistering (or when stopped before registering);
2 no node answered; 3 a node refused the registration or the control stream;
4 the stubs are missing; 5 no node took the deregistration.

Run examples/python-provider/generate.sh (scripts/setup does) before this.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

GENERATED = Path(__file__).resolve().parent / "generated"
sys.path.insert(0, str(GENERATED))
try:
    from orrery.v1 import common_pb2, provider_pb2, provider_pb2_grpc
    from orrery.v1 import types_pb2 as t
except ImportError as error:
    print(
        f"provider.py: the stubs in {GENERATED} are missing or stale ({error}); "
        "run examples/python-provider/generate.sh (or scripts/setup)",
        file=sys.stderr,
    )
    sys.exit(4)

# ---------------------------------------------------------------------------
# Events: one JSON object per line on stdout.
# ---------------------------------------------------------------------------


def emit(event: str, **fields: Any) -> None:
    """Prints one event as a JSON line, flushed at once so a reader sees it."""
    try:
        print(json.dumps({"event": event, **fields}), flush=True)
    except BrokenPipeError:
        # Nobody reads the events any more; keep serving and deregister as usual.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


# ---------------------------------------------------------------------------
# Types: building `TypeSchema`s.
# ---------------------------------------------------------------------------

STRING = t.TypeSchema(primitive=t.PRIMITIVE_TYPE_STRING)
INT = t.TypeSchema(primitive=t.PRIMITIVE_TYPE_INT)
FLOAT = t.TypeSchema(primitive=t.PRIMITIVE_TYPE_FLOAT)
BOOL = t.TypeSchema(primitive=t.PRIMITIVE_TYPE_BOOL)


def list_of(element: t.TypeSchema) -> t.TypeSchema:
    """`List(element)`."""
    return t.TypeSchema(list=t.ListType(element=element))


def map_of(key: t.TypeSchema, value: t.TypeSchema) -> t.TypeSchema:
    """`Map(key, value)`."""
    return t.TypeSchema(map=t.MapType(key=key, value=value))


def product(**fields: t.TypeSchema) -> t.TypeSchema:
    """`Product(fields)`, the fields in the order given."""
    named = [t.NamedType(name=name, type=schema) for name, schema in fields.items()]
    return t.TypeSchema(product=t.ProductType(fields=named))


def union(**variants: t.TypeSchema) -> t.TypeSchema:
    """`Union(variants)`, the variants in the order given."""
    named = [t.NamedType(name=name, type=schema) for name, schema in variants.items()]
    return t.TypeSchema(union=t.UnionType(variants=named))


def optional(inner: t.TypeSchema) -> t.TypeSchema:
    """`Optional(inner)`."""
    return t.TypeSchema(optional=t.OptionalType(inner=inner))


# ---------------------------------------------------------------------------
# Values: proto `Value` <-> Python, guided by the type.
#
# A `Value` carries no type of its own, so both directions walk the module's
# declared type:
#   String -> str, Int -> int (64-bit), Float -> float, Bool -> bool,
#   List -> list, Map -> dict, Product -> dict of its fields (in order),
#   Union -> (variant, value) tuple, Optional -> the value or None.
# Python's None cannot tell an absent Optional(Optional(T)) from a present
# absent one; this example's modules use no nested optionals.
# ---------------------------------------------------------------------------

INT_MIN, INT_MAX = -(2**63), 2**63 - 1

PRIMITIVES = {
    t.PRIMITIVE_TYPE_STRING: ("string_value", "String"),
    t.PRIMITIVE_TYPE_INT: ("int_value", "Int"),
    t.PRIMITIVE_TYPE_FLOAT: ("float_value", "Float"),
    t.PRIMITIVE_TYPE_BOOL: ("bool_value", "Bool"),
}


class TypeMismatch(Exception):
    """A value does not fit its type; `path` says where, e.g. `input.name`."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")


def from_value(value: t.Value, schema: t.TypeSchema, path: str) -> Any:
    """The Python value of `value`, which must be of type `schema`."""
    kind = schema.WhichOneof("kind")
    got = value.WhichOneof("kind")

    def expect(field: str, name: str) -> None:
        if got != field:
            raise TypeMismatch(path, f"expected {name}, got {got or 'no value'}")

    if kind == "primitive":
        field, name = PRIMITIVES[schema.primitive]
        expect(field, name)
        return getattr(value, field)
    if kind == "list":
        expect("list_value", "a List")
        element = schema.list.element
        return [
            from_value(item, element, f"{path}[{i}]")
            for i, item in enumerate(value.list_value.elements)
        ]
    if kind == "map":
        expect("map_value", "a Map")
        result = {}
        for i, entry in enumerate(value.map_value.entries):
            key = from_value(entry.key, schema.map.key, f"{path}{{{i}}}.key")
            try:
                result[key] = from_value(entry.value, schema.map.value, f"{path}[{key!r}]")
            except TypeError:  # list or dict keys cannot key a Python dict
                raise TypeMismatch(path, "this provider takes maps with scalar keys only")
        return result
    if kind == "product":
        expect("product_value", "a Product")
        declared = schema.product.fields
        fields = value.product_value.fields
        names = [f.name for f in fields]
        if names != [f.name for f in declared]:
            raise TypeMismatch(path, f"expected fields {[f.name for f in declared]}, got {names}")
        return {
            f.name: from_value(v.value, f.type, f"{path}.{f.name}")
            for f, v in zip(declared, fields)
        }
    if kind == "union":
        expect("union_value", "a Union")
        variant = value.union_value.variant
        types = {v.name: v.type for v in schema.union.variants}
        if variant not in types:
            raise TypeMismatch(path, f"no variant {variant!r}")
        return (variant, from_value(value.union_value.value, types[variant], f"{path}.{variant}"))
    if kind == "optional":
        expect("optional_value", "an Optional")
        if not value.optional_value.HasField("value"):
            return None
        return from_value(value.optional_value.value, schema.optional.inner, path)
    raise TypeMismatch(path, f"a type with no kind ({kind})")


def to_value(python: Any, schema: t.TypeSchema, path: str) -> t.Value:
    """The proto `Value` of the Python value `python`, which must fit `schema`."""
    kind = schema.WhichOneof("kind")

    def refuse(expected: str) -> TypeMismatch:
        return TypeMismatch(path, f"expected {expected}, got {type(python).__name__}")

    if kind == "primitive":
        primitive = schema.primitive
        # bool is a subclass of int in Python: keep the two apart.
        if primitive == t.PRIMITIVE_TYPE_STRING and isinstance(python, str):
            return t.Value(string_value=python)
        if primitive == t.PRIMITIVE_TYPE_BOOL and isinstance(python, bool):
            return t.Value(bool_value=python)
        if (
            primitive == t.PRIMITIVE_TYPE_INT
            and isinstance(python, int)
            and not isinstance(python, bool)
        ):
            if not INT_MIN <= python <= INT_MAX:
                raise TypeMismatch(path, f"{python} does not fit a 64-bit Int")
            return t.Value(int_value=python)
        if (
            primitive == t.PRIMITIVE_TYPE_FLOAT
            and isinstance(python, (int, float))
            and not isinstance(python, bool)
        ):
            return t.Value(float_value=float(python))
        raise refuse(PRIMITIVES[primitive][1])
    if kind == "list":
        if not isinstance(python, (list, tuple)):
            raise refuse("a list")
        elements = [
            to_value(item, schema.list.element, f"{path}[{i}]") for i, item in enumerate(python)
        ]
        return t.Value(list_value=t.ListValue(elements=elements))
    if kind == "map":
        if not isinstance(python, dict):
            raise refuse("a dict")
        entries = [
            t.MapEntry(
                key=to_value(key, schema.map.key, f"{path}{{{key!r}}}"),
                value=to_value(item, schema.map.value, f"{path}[{key!r}]"),
            )
            for key, item in python.items()
        ]
        return t.Value(map_value=t.MapValue(entries=entries))
    if kind == "product":
        if not isinstance(python, dict):
            raise refuse("a dict of the product's fields")
        declared = schema.product.fields
        if set(python) != {f.name for f in declared}:
            raise TypeMismatch(
                path, f"expected fields {[f.name for f in declared]}, got {list(python)}"
            )
        fields = [
            t.NamedValue(name=f.name, value=to_value(python[f.name], f.type, f"{path}.{f.name}"))
            for f in declared
        ]
        return t.Value(product_value=t.ProductValue(fields=fields))
    if kind == "union":
        types = {v.name: v.type for v in schema.union.variants}
        if not (isinstance(python, tuple) and len(python) == 2 and python[0] in types):
            raise refuse(f"a (variant, value) tuple with a variant of {list(types)}")
        variant, inner = python
        return t.Value(
            union_value=t.UnionValue(
                variant=variant, value=to_value(inner, types[variant], f"{path}.{variant}")
            )
        )
    if kind == "optional":
        if python is None:
            return t.Value(optional_value=t.OptionalValue())
        return t.Value(
            optional_value=t.OptionalValue(value=to_value(python, schema.optional.inner, path))
        )
    raise TypeMismatch(path, f"a type with no kind ({kind})")


# ---------------------------------------------------------------------------
# The modules.
# ---------------------------------------------------------------------------


class ModuleFailed(Exception):
    """A module ran and failed; reported to the caller as RUNTIME_ERROR."""


@dataclass(frozen=True)
class Module:
    """One module: its declaration and the function that runs it."""

    name: str
    description: str
    input_type: t.TypeSchema
    output_type: t.TypeSchema
    run: Callable[[Any], Any]
    version: str = "1.0.0"

    def declaration(self) -> provider_pb2.ModuleDeclaration:
        return provider_pb2.ModuleDeclaration(
            name=self.name,
            version=self.version,
            description=self.description,
            input_type=self.input_type,
            output_type=self.output_type,
            tags={"language": "python"},
        )


def greet(person: dict) -> str:
    return f"Hello, {person['name']}" + ("!" if person["excited"] else ".")


def total(numbers: list[int]) -> int:
    result = sum(numbers)
    if not INT_MIN <= result <= INT_MAX:
        raise ModuleFailed("the sum does not fit a 64-bit Int")
    return result


def mean(numbers: list[float]) -> float | None:
    return math.fsum(numbers) / len(numbers) if numbers else None


def word_counts(text: str) -> dict[str, int]:
    return dict(Counter(text.lower().split()))  # in order of first appearance


def area(shape: tuple[str, dict]) -> float:
    variant, size = shape
    if variant == "circle":
        if size["radius"] < 0:
            raise ModuleFailed("a radius cannot be negative")
        return math.pi * size["radius"] ** 2
    if size["width"] < 0 or size["height"] < 0:
        raise ModuleFailed("a side cannot be negative")
    return size["width"] * size["height"]


SHAPE = union(
    circle=product(radius=FLOAT),
    rectangle=product(width=FLOAT, height=FLOAT),
)

MODULES = [
    Module("greet", "Greets someone by name.", product(name=STRING, excited=BOOL), STRING, greet),
    Module("sum", "Adds up a list of integers.", list_of(INT), INT, total),
    Module("mean", "The mean; none for no numbers.", list_of(FLOAT), optional(FLOAT), mean),
    Module("word_counts", "How often each word occurs.", STRING, map_of(STRING, INT), word_counts),
    Module("area", "The area of a circle or a rectangle.", SHAPE, FLOAT, area),
]

# ---------------------------------------------------------------------------
# The executor: `orrery.v1.ModuleExecutor`, called by the nodes.
# ---------------------------------------------------------------------------

ExecutionErrorCode = provider_pb2.ExecutionErrorCode


class Executor(provider_pb2_grpc.ModuleExecutorServicer):
    """Runs modules for the nodes, counting the calls in flight."""

    def __init__(self, modules: list[Module]):
        self.modules = {m.name: m for m in modules}
        self.in_flight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def Execute(
        self, request: provider_pb2.ExecuteRequest, context
    ) -> provider_pb2.ExecuteResponse:
        self.in_flight += 1
        self._idle.clear()
        try:
            response = await self._execute(request)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()
        outcome = response.WhichOneof("result")
        fields = {"ok": outcome == "output"}
        if outcome == "error":
            fields["error"] = ExecutionErrorCode.Name(response.error.code).removeprefix(
                "EXECUTION_ERROR_CODE_"
            )
        emit("executed", module=request.module, execution_id=request.execution_id, **fields)
        return response

    async def _execute(self, request: provider_pb2.ExecuteRequest) -> provider_pb2.ExecuteResponse:
        def failed(code: int, message: str) -> provider_pb2.ExecuteResponse:
            return provider_pb2.ExecuteResponse(
                error=provider_pb2.ExecutionError(code=code, message=message)
            )

        if self.draining:
            return failed(
                ExecutionErrorCode.EXECUTION_ERROR_CODE_UNAVAILABLE, "this provider is draining"
            )
        module = self.modules.get(request.module)
        if module is None:
            return failed(
                ExecutionErrorCode.EXECUTION_ERROR_CODE_MODULE_NOT_FOUND,
                f"no module {request.module!r} here",
            )
        try:
            argument = from_value(request.input, module.input_type, "input")
        except TypeMismatch as error:
            return failed(ExecutionErrorCode.EXECUTION_ERROR_CODE_TYPE_ERROR, str(error))
        # Run in a worker thread so that a slow module does not stop heartbeats;
        # honour the node's deadline (timeout_ms = 0: none). A thread cannot be
        # stopped: past the deadline the module finishes unheard.
        timeout = request.timeout_ms / 1000 if request.timeout_ms else None
        try:
            result = await asyncio.wait_for(asyncio.to_thread(module.run, argument), timeout)
        except asyncio.TimeoutError:
            return failed(
                ExecutionErrorCode.EXECUTION_ERROR_CODE_TIMEOUT,
                f"no answer within {request.timeout_ms} ms",
            )
        except Exception as error:  # the module's own failure, whatever it is
            return failed(
                ExecutionErrorCode.EXECUTION_ERROR_CODE_RUNTIME_ERROR,
                str(error) or type(error).__name__,
            )
        try:
            return provider_pb2.ExecuteResponse(
                output=to_value(result, module.output_type, "output")
            )
        except TypeMismatch as error:
            return failed(ExecutionErrorCode.EXECUTION_ERROR_CODE_TYPE_ERROR, str(error))


async def start_executor(executor: Executor, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    """Serves `executor` and gRPC health on host:port (0: any free port)."""
    server = grpc.aio.server()
    provider_pb2_grpc.add_ModuleExecutorServicer_to_server(executor, server)
    health_service = health.aio.HealthServicer()
    await health_service.set("orrery.v1.ModuleExecutor", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_service, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound


# ---------------------------------------------------------------------------
# The session with the cluster: Register, ControlPlane, Deregister.
# ---------------------------------------------------------------------------

RegisterStage = provider_pb2.RegisterStage
ErrorCode = common_pb2.ErrorCode

REGISTER_TIMEOUT_S = 15  # covers the node's health check of the executor and the commit
REGISTER_ROUNDS = 10  # times every node is tried before giving up
REGISTER_PAUSE_S = 1  # between rounds
DEREGISTER_TIMEOUT_S = 5
ATTACH_BACKOFF_S = 0.2  # pause before the next node when one could not attach at all


@dataclass(frozen=True)
class Registration:
    """A committed connection."""

    node: int  # index of the node that took the registration
    connection_id: int
    generation: int
    lease_ttl_ms: int
    heartbeat_interval_ms: int


class Refused(Exception):
    """A node refused for good (a non-retryable `ErrorDetail`); exit code 3."""


class NoNode(Exception):
    """No node answered; exit code 2."""


class Lost(Exception):
    """The control stream broke; the next node may take the connection.
    `attached` says whether the stream got as far as attaching: then the next
    node is tried at once, else after a short pause."""

    def __init__(self, reason: str, attached: bool):
        super().__init__(reason)
        self.attached = attached


class Expired(Exception):
    """The connection is gone (expired or removed): register again."""


def error_detail(error: grpc.aio.AioRpcError) -> common_pb2.ErrorDetail | None:
    """The `ErrorDetail` an Orrery node attaches to a failed RPC, if any."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return common_pb2.ErrorDetail.FromString(value)
    return None


def describe(error: grpc.aio.AioRpcError) -> str:
    detail = error_detail(error)
    if detail is not None:
        return f"{ErrorCode.Name(detail.code).removeprefix('ERROR_CODE_')}: {detail.message}"
    return f"{error.code().name}: {error.details()}"


def classify(error: grpc.aio.AioRpcError, attached: bool) -> Exception:
    """What a failed control stream means: expired, refused for good, or lost."""
    detail = error_detail(error)
    gone = (ErrorCode.ERROR_CODE_NOT_FOUND, ErrorCode.ERROR_CODE_STALE_GENERATION)
    if error.code() == grpc.StatusCode.NOT_FOUND or (detail is not None and detail.code in gone):
        return Expired(describe(error))
    if detail is not None and not detail.retryable:
        return Refused(describe(error))
    return Lost(describe(error), attached)


class Session:
    """Keeps one provider connection registered and attached until told to stop."""

    def __init__(self, args: argparse.Namespace, executor: Executor, endpoint: str):
        self.nodes: list[str] = args.nodes
        self.namespace: str = args.namespace
        self.group: str = args.group
        self.lease_ttl_ms: int = args.lease_ttl_ms
        self.endpoint = endpoint
        self.executor = executor
        self.client_id = f"python-provider-{uuid.uuid4()}"
        self.serial = 0
        self.stopping = asyncio.Event()  # set by SIGTERM / SIGINT

    def next_request_id(self) -> common_pb2.RequestId:
        """A new logical write's id; a retry of that write reuses it."""
        self.serial += 1
        return common_pb2.RequestId(client_id=self.client_id, serial=self.serial)

    async def run(self) -> int:
        """The whole life of the connection; returns the process exit code."""
        try:
            while not self.stopping.is_set():
                registration = await self.register()
                if registration is None:  # stopped before it committed
                    break
                try:
                    return await self.stay_attached(registration)
                except Expired as error:
                    emit("expired", connection_id=registration.connection_id, reason=str(error))
            return 0
        except (Refused, NoNode) as error:
            emit("error", message=str(error))
            print(f"provider.py: {error}", file=sys.stderr)
            return 3 if isinstance(error, Refused) else 2

    # -- Register ------------------------------------------------------------

    async def register(self) -> Registration | None:
        """Registers with the first node that answers, going round the nodes
        for up to REGISTER_ROUNDS rounds (a cluster that is starting has no
        leader for a moment). Every retry reuses the request id, so a
        registration that committed before its node failed is answered again
        rather than made twice. None when a signal stopped it first."""
        request = provider_pb2.RegisterRequest(
            request_id=self.next_request_id(),
            namespace=self.namespace,
            group_id=self.group,
            executor_endpoint=self.endpoint,
            modules=[m.declaration() for m in self.executor.modules.values()],
            metadata={"language": "python", "grpcio": grpc.__version__},
            lease_ttl_ms=self.lease_ttl_ms,
        )
        failures = []
        for _ in range(REGISTER_ROUNDS):
            failures.clear()
            for index, address in enumerate(self.nodes):
                try:
                    registration = await self.register_on(index, request)
                except grpc.aio.AioRpcError as error:
                    detail = error_detail(error)
                    if detail is not None and not detail.retryable:
                        raise Refused(f"{address}: {describe(error)}")
                    failures.append(f"{address}: {describe(error)}")
                    continue
                except Lost as lost:
                    failures.append(f"{address}: {lost}")
                    continue
                if registration is not None:
                    return registration
                failures.append(f"{address}: the event stream ended before COMMITTED")
            if await self.stopped_within(REGISTER_PAUSE_S):
                return None
        raise NoNode("no node took the registration: " + "; ".join(failures))

    async def stopped_within(self, seconds: float) -> bool:
        """Waits `seconds`, or less if a signal comes; says whether one came."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        return self.stopping.is_set()

    async def register_on(
        self, index: int, request: provider_pb2.RegisterRequest
    ) -> Registration | None:
        """One attempt on one node, reading events until ACTIVE or FAILED."""
        registration = None
        async with grpc.aio.insecure_channel(self.nodes[index]) as channel:
            stub = provider_pb2_grpc.ProviderServiceStub(channel)
            async for event in stub.Register(request, timeout=REGISTER_TIMEOUT_S):
                stage = RegisterStage.Name(event.stage).removeprefix("REGISTER_STAGE_")
                emit("stage", stage=stage, node=self.nodes[index], message=event.message)
                if event.stage == RegisterStage.REGISTER_STAGE_FAILED:
                    code = ErrorCode.Name(event.error.code).removeprefix("ERROR_CODE_")
                    where = f" at {event.error_path}" if event.error_path else ""
                    reason = f"registration failed{where}: {code}: {event.error.message}"
                    if event.error.retryable:  # e.g. NO_QUORUM: another node may do
                        raise Lost(reason, False)
                    raise Refused(reason)
                if event.stage == RegisterStage.REGISTER_STAGE_COMMITTED:
                    registration = Registration(
                        node=index,
                        connection_id=event.connection_id,
                        generation=event.generation,
                        lease_ttl_ms=event.lease_ttl_ms,
                        heartbeat_interval_ms=event.heartbeat_interval_ms,
                    )
                if event.stage == RegisterStage.REGISTER_STAGE_ACTIVE:
                    break
        if registration is not None:
            emit(
                "registered",
                connection_id=registration.connection_id,
                generation=registration.generation,
                node=self.nodes[index],
                lease_ttl_ms=registration.lease_ttl_ms,
                heartbeat_interval_ms=registration.heartbeat_interval_ms,
            )
        return registration

    # -- ControlPlane --------------------------------------------------------

    async def stay_attached(self, registration: Registration) -> int:
        """Keeps a control stream attached, moving to the next node whenever one
        breaks, until a drain or a signal ends the session with a deregistration.
        Raises `Expired` when a node no longer knows the connection."""
        index = registration.node
        while True:
            if self.stopping.is_set():
                return await self.deregister(registration, index, None)
            try:
                async with grpc.aio.insecure_channel(self.nodes[index]) as channel:
                    return await self.control_stream(registration, index, channel)
            except Lost as lost:
                emit("detached", node=self.nodes[index], reason=str(lost))
                was_attached = lost.attached
            index = (index + 1) % len(self.nodes)
            if not was_attached:
                await self.stopped_within(ATTACH_BACKOFF_S)

    async def control_stream(
        self, registration: Registration, index: int, channel: grpc.aio.Channel
    ) -> int:
        """One control stream: attach, then heartbeat and listen until a drain or
        a signal (deregisters and returns the exit code) or a failure (raises)."""
        call = provider_pb2_grpc.ProviderServiceStub(channel).ControlPlane()
        writing = asyncio.Lock()  # one write at a time on a stream

        async def send(**body: Any) -> None:
            async with writing:
                await call.write(provider_pb2.ControlMessage(**body))

        try:
            await send(
                attach=provider_pb2.Attach(
                    connection_id=registration.connection_id, generation=registration.generation
                )
            )
            reply = await call.read()
        except grpc.aio.AioRpcError as error:
            raise classify(error, attached=False)
        if reply is grpc.aio.EOF or reply.WhichOneof("body") != "attached":
            raise Lost("the node closed the stream before attaching", False)
        attached = reply.attached
        emit(
            "attached",
            node_id=attached.node_id,
            node=self.nodes[index],
            connection_id=registration.connection_id,
        )
        interval_s = (attached.heartbeat_interval_ms or registration.heartbeat_interval_ms) / 1000
        ttl_s = (attached.lease_ttl_ms or registration.lease_ttl_ms) / 1000

        async def heartbeat() -> None:
            sequence = 0
            while True:
                await asyncio.sleep(interval_s)
                sequence += 1
                await send(
                    heartbeat=provider_pb2.Heartbeat(
                        sequence=sequence, in_flight=self.executor.in_flight
                    )
                )

        async def next_drain_request() -> provider_pb2.DrainRequest:
            # Acks say whether renewals reach the leader; when they have not for
            # half a TTL, this node is cut off: try another before the lease ends.
            loop = asyncio.get_running_loop()
            unrenewed_since = None
            while True:
                reply = await call.read()
                if reply is grpc.aio.EOF:
                    raise Lost("the node closed the stream", True)
                body = reply.WhichOneof("body")
                if body == "drain":
                    return reply.drain
                if body == "heartbeat_ack":
                    if reply.heartbeat_ack.renewed:
                        unrenewed_since = None
                    else:
                        unrenewed_since = unrenewed_since or loop.time()
                        if loop.time() - unrenewed_since >= ttl_s / 2:
                            raise Lost("renewals are not reaching the leader", True)

        async def node_going_away() -> None:
            # A node that shuts down gracefully sends GOAWAY: the channel leaves
            # READY while this stream still works. Move before the node is gone.
            state = channel.get_state()
            while state == grpc.ChannelConnectivity.READY:
                await channel.wait_for_state_change(state)
                state = channel.get_state()
            raise Lost(f"the node is going away (its channel is {state.name})", True)

        tasks = {
            "heartbeat": asyncio.create_task(heartbeat()),
            "replies": asyncio.create_task(next_drain_request()),
            "going_away": asyncio.create_task(node_going_away()),
            "stop": asyncio.create_task(self.stopping.wait()),
        }
        try:
            done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
            if tasks["stop"] in done:
                return await self.deregister(registration, index, channel)
            # The first task that ended: a drain request, or why the stream failed.
            finished = tasks["replies"] if tasks["replies"] in done else next(iter(done))
            try:
                drain = finished.result()
            except grpc.aio.AioRpcError as error:
                raise classify(error, attached=True)
            except (Lost, Expired, Refused):
                raise
            except Exception as error:  # a write on a stream that is already gone
                raise Lost(f"the stream broke ({error!r})", True)
            # The heartbeat task keeps the lease alive while the calls finish.
            await self.drain(drain, send)
            return await self.deregister(registration, index, channel)
        finally:
            for task in tasks.values():
                task.cancel()
            call.cancel()

    async def drain(self, request: provider_pb2.DrainRequest, send: Callable) -> None:
        """Takes no new calls, acks, waits for the calls in flight (until the
        drain deadline at most), and acks again when idle."""
        self.executor.draining = True
        in_flight = self.executor.in_flight
        emit("drain", reason=request.reason, deadline_ms=request.deadline_ms, in_flight=in_flight)
        await send(drain_ack=provider_pb2.DrainAck(in_flight=in_flight))
        if in_flight:
            try:
                await asyncio.wait_for(
                    self.executor.wait_idle(), request.deadline_ms / 1000 or None
                )
            except asyncio.TimeoutError:
                pass  # the cluster removes the connection at the deadline anyway
            await send(drain_ack=provider_pb2.DrainAck(in_flight=self.executor.in_flight))

    # -- Deregister ----------------------------------------------------------

    async def deregister(
        self, registration: Registration, first: int, channel: grpc.aio.Channel | None
    ) -> int:
        """Deregisters through nodes[first] (over `channel` when given), then the
        others; returns the exit code: 0, or 5 when no node took it."""
        request = provider_pb2.DeregisterRequest(
            request_id=self.next_request_id(),
            connection_id=registration.connection_id,
            generation=registration.generation,
        )
        failures = []
        for step in range(len(self.nodes)):
            address = self.nodes[(first + step) % len(self.nodes)]
            try:
                if step == 0 and channel is not None:
                    answer = await self._deregister_over(channel, request)
                else:
                    async with grpc.aio.insecure_channel(address) as own:
                        answer = await self._deregister_over(own, request)
            except grpc.aio.AioRpcError as error:
                failures.append(f"{address}: {describe(error)}")
                continue
            emit(
                "deregistered",
                connection_id=registration.connection_id,
                removed=answer.removed,
                removed_modules=list(answer.removed_modules),
                namespace_released=answer.namespace_released,
            )
            return 0
        message = "no node took the deregistration: " + "; ".join(failures)
        emit("error", message=message)
        print(f"provider.py: {message}", file=sys.stderr)
        return 5

    @staticmethod
    async def _deregister_over(
        channel: grpc.aio.Channel, request
    ) -> provider_pb2.DeregisterResponse:
        stub = provider_pb2_grpc.ProviderServiceStub(channel)
        return await stub.Deregister(request, timeout=DEREGISTER_TIMEOUT_S)


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="An Orrery provider in Python.")
    parser.add_argument(
        "--nodes",
        default=os.environ.get("ORRERY_ENDPOINTS", "127.0.0.1:7400,127.0.0.1:7401,127.0.0.1:7402"),
        help="comma-separated host:port of Orrery nodes, tried in order "
        "(default: $ORRERY_ENDPOINTS, else the three nodes of `orrery dev`)",
    )
    parser.add_argument(
        "--namespace", default="py", help="the namespace of the modules (default: py)"
    )
    parser.add_argument(
        "--group",
        default="",
        help="the provider group; instances of a group share calls (default: none)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address the executor listens on (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="the executor's port; 0 takes any free port (default: 0)",
    )
    parser.add_argument(
        "--advertise",
        default="",
        help="the host:port the nodes dial for this executor (default: --host and the bound port)",
    )
    parser.add_argument(
        "--lease-ttl-ms",
        type=int,
        default=0,
        help="the lease TTL to ask for; 0: the cluster's default",
    )
    args = parser.parse_args(argv)
    args.nodes = [node.strip() for node in args.nodes.split(",") if node.strip()]
    if not args.nodes:
        parser.error("--nodes names no node")
    return args


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    executor = Executor(MODULES)
    server, port = await start_executor(executor, args.host, args.port)
    endpoint = args.advertise or f"{args.host}:{port}"
    emit("listening", address=endpoint, modules=[f"{args.namespace}.{m.name}" for m in MODULES])

    session = Session(args, executor, endpoint)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, session.stopping.set)
    try:
        return await session.run()
    finally:
        await server.stop(grace=1)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
