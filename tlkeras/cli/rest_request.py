"""Writes the TF Serving REST request body for images, ready for `curl`.

    tlkeras rest-request IMAGE_OR_FOLDER... > request.json
    curl -d @request.json http://localhost:8501/v1/models/tlkeras:predict

The body is TF Serving's row format for the `serving_default` signature: one instance per image,
its bytes base64-encoded under the input name, `{"image_bytes": {"b64": "..."}}`. The server
decodes `b64` back to the bytes, so any JPEG/PNG/GIF/BMP of any size works.
"""

import base64
import json
import sys

from absl import app, flags

from tlkeras.artifacts.contract import IMAGE_BYTES_INPUT, SERVING_SIGNATURE
from tlkeras.image_files import expand_image_paths


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    flags.DEFINE_string("out", "-", "Where to write the JSON body; - is stdout.",
                        flag_values=flag_values)


def request_body(images: list[bytes]) -> dict:
    """`{"signature_name": ..., "instances": [{"image_bytes": {"b64": ...}}, ...]}`."""
    return {"signature_name": SERVING_SIGNATURE,
            "instances": [{IMAGE_BYTES_INPUT: {"b64": base64.b64encode(image).decode("ascii")}}
                          for image in images]}


def main(argv):
    paths = expand_image_paths(argv[1:])
    if not paths:
        raise app.UsageError("no images given: pass image files or folders after the flags.")
    images = []
    for path in paths:
        with open(path, "rb") as file:
            images.append(file.read())
    body = json.dumps(request_body(images))
    if flags.FLAGS.out == "-":
        sys.stdout.write(body + "\n")
    else:
        with open(flags.FLAGS.out, "w") as file:
            file.write(body + "\n")
        print(f"wrote {len(images)} instance(s) to {flags.FLAGS.out}", file=sys.stderr)

