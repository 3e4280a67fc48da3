"""What every backend adapter shares: the adapter interface, the operator's backend options, and
building and reading tensors in the shapes a model declares."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tritonclient.grpc import service_pb2 as pb

from gateway.errors import APIError
from gateway.generation import Delta, GenerationRequest, TokenizerTools
from gateway.model_info import ModelInfo
from gateway.settings import per_model
from gateway.triton import tensors

STRUCTURED_OUTPUTS_KEYS = ("structured_outputs", "guided_decoding")


@dataclass(frozen=True)
class BackendOptions:
    """What the operator says about the deployment that Triton cannot be asked.

    vLLM backends r25.11+ take guided decoding under `structured_outputs`, r25.01-r25.10
    under `guided_decoding`: `structured_outputs_keys` holds "KEY" (every model) and
    "MODEL=KEY" entries."""

    structured_outputs_keys: tuple[str, ...] = ()

    def structured_outputs_key(self, model: str) -> str:
        return per_model(self.structured_outputs_keys, model) or "structured_outputs"


class ResponseReader(Protocol):
    """Per-request state that turns Triton responses into deltas."""

    def read(self, response: pb.ModelInferResponse, final: bool) -> Delta: ...


class BackendAdapter(Protocol):
    def build_request(self, request: GenerationRequest) -> pb.ModelInferRequest: ...

    def reader(self, request: GenerationRequest, tokenizer: TokenizerTools | None) -> ResponseReader: ...

    def translate_error(self, message: str) -> APIError: ...

    def retryable(self, message: str, request: GenerationRequest) -> bool:
        """Whether sending `request` again (rebuilt) may succeed where it failed with `message`."""
        ...


@runtime_checkable
class EmbeddingAdapter(Protocol):
    """What an adapter of a backend that can embed text also offers."""

    def build_embedding_request(
        self, request_id: str, source: str | list[int], dimensions: int | None
    ) -> pb.ModelInferRequest: ...

    def read_embedding(self, response: pb.ModelInferResponse) -> tuple[list[float], int | None]:
        """The vector and, where the model reports it, the input's token count."""
        ...


def declared_shape(dims: Sequence[int], count: int) -> list[int]:
    """The shape of `count` elements as an input declares it (without the batch dimension):
    fixed dimensions kept ([1, 1] stays [1, 1]), the last variable one (-1) holding the count;
    [count] where the declaration cannot hold that many."""
    fixed = math.prod(size for size in dims if size != -1)
    variable = [index for index, size in enumerate(dims) if size == -1]
    if not dims or fixed <= 0 or count % fixed:
        return [count]
    if not variable:
        return list(dims) if fixed == count else [count]
    shape = [1 if size == -1 else size for size in dims]
    shape[variable[-1]] = count // fixed
    return shape


@functools.lru_cache(maxsize=1024)
def _input_header(
    name: str, datatype: str, dims: tuple[int, ...] | None, count: int, batched: bool
) -> pb.ModelInferRequest.InferInputTensor:
    """An input's name, datatype and shape as the model declares them (`dims` None: not
    declared): the same for every request, so built once and copied into each (building it
    field by field cost a request about 6 µs an input)."""
    shape = declared_shape(dims, count) if dims is not None else [count]
    return pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=[1, *shape] if batched else shape)


class RequestBuilder:
    """Adds input tensors to a ModelInferRequest in the shape the model declares."""

    def __init__(self, model: ModelInfo, request_id: str) -> None:
        self.model = model
        self.message = pb.ModelInferRequest(model_name=model.name, id=request_id)
        self._batched = model.max_batch_size > 0

    def _add(self, name: str, datatype: str, count: int, raw: bytes) -> None:
        spec = self.model.inputs.get(name)
        self.message.inputs.append(_input_header(name, datatype, spec.dims if spec else None, count, self._batched))
        self.message.raw_input_contents.append(raw)

    def add_bytes(self, name: str, value: bytes) -> None:
        self._add(name, "BYTES", 1, tensors.encode_one_bytes(value))

    def add_bytes_list(self, name: str, values: list[bytes]) -> None:
        self._add(name, "BYTES", len(values), tensors.encode_bytes(values))

    def add_number(self, name: str, datatype: str, value: float) -> None:
        self._add(name, datatype, 1, tensors.encode_numbers([value], datatype))

    def add_tensor(self, name: str, datatype: str, shape: list[int], raw: bytes) -> None:
        """A tensor whose shape has more than one element, batch dimension added when batched."""
        tensor = self.message.inputs.add()
        tensor.name = name
        tensor.datatype = datatype
        tensor.shape.extend([1, *shape] if self._batched else shape)
        self.message.raw_input_contents.append(raw)

    def add_bool(self, name: str, value: bool) -> None:
        self._add(name, "BOOL", 1, b"\x01" if value else b"\x00")

    def add_bool_if_declared(self, name: str, value: bool) -> None:
        if self.model.accepts(name):
            self.add_bool(name, value)


def output_indices(response: pb.ModelInferResponse) -> dict[str, int]:
    """Output name -> position in `raw_output_contents`."""
    return {output.name: index for index, output in enumerate(response.outputs)}


def token_counts(response: pb.ModelInferResponse, indices: dict[str, int]) -> tuple[int | None, int | None]:
    """The `num_input_tokens` and `num_output_tokens` outputs, where the model sends them (of
    one response; TokenCountOutputs reads a whole stream's)."""
    raw = response.raw_output_contents

    def count(name: str) -> int | None:
        index = indices.get(name)
        return None if index is None else tensors.decode_first_int(raw[index], response.outputs[index].datatype)

    return count("num_input_tokens"), count("num_output_tokens")


class TokenCountOutputs:
    """Where a stream's responses carry `num_input_tokens` and `num_output_tokens`, and how
    they are encoded: learnt from one response and reused for the rest of its stream (the
    backend lists a stream's outputs alike in every response), so each token's read is two
    unpacks."""

    __slots__ = ("_input", "_output")

    def __init__(self, response: pb.ModelInferResponse, indices: dict[str, int]) -> None:
        self._input = self._decoder(response, indices, "num_input_tokens")
        self._output = self._decoder(response, indices, "num_output_tokens")

    @staticmethod
    def _decoder(
        response: pb.ModelInferResponse, indices: dict[str, int], name: str
    ) -> tuple[int, Callable[[bytes], int | None]] | None:
        index = indices.get(name)
        return None if index is None else (index, tensors.first_int_decoder(response.outputs[index].datatype))

    def read(self, raw: Sequence[bytes]) -> tuple[int | None, int | None]:
        at_input, at_output = self._input, self._output
        return (
            None if at_input is None else at_input[1](raw[at_input[0]]),
            None if at_output is None else at_output[1](raw[at_output[0]]),
        )
