"""A plain decoupled text model (see config.pbtxt): replies to the prompt's last user turn as
the other stand-ins do, streamed a word per response, or in one response when not streaming.
Like `mock_llm`, it ends a stream with a flag-only final response."""

import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

# The Python-backend stub runs an isolated interpreter that ignores PYTHONPATH; honour it.
sys.path[:0] = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]

from standin.text import reply_for

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _text(piece: str):  # type: ignore[no-untyped-def]
    tensor = pb_utils.Tensor("text_output", np.array([[piece.encode("utf-8")]], dtype=np.object_))
    return pb_utils.InferenceResponse(output_tensors=[tensor])


class TritonPythonModel:
    def execute(self, requests):  # type: ignore[no-untyped-def]
        for request in requests:
            sender = request.get_response_sender()
            prompt = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy().reshape(-1)[0]
            stream = bool(pb_utils.get_input_tensor_by_name(request, "stream").as_numpy().reshape(-1)[0])
            reply = reply_for(prompt.decode("utf-8"), 0.0, None)
            if not stream:
                sender.send(_text(reply), flags=_FINAL)
                continue
            words = reply.split(" ")
            for index, word in enumerate(words):
                sender.send(_text(word if index == 0 else " " + word))
            sender.send(flags=_FINAL)
