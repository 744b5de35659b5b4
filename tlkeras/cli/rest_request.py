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
from tlkeras.cli import common
from tlkeras.errors import ConfigError


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    flags.DEFINE_string("out", "-", "Where to write the JSON body; - is stdout.",
                        flag_values=flag_values)


def request_body(images: list[bytes]) -> dict:
    """`{"signature_name": ..., "instances": [{"image_bytes": {"b64": ...}}, ...]}`."""
    return {"signature_name": SERVING_SIGNATURE,
            "instances": [{IMAGE_BYTES_INPUT: {"b64": base64.b64encode(image).decode("ascii")}}
                          for image in images]}


def main(argv):
    with common.user_errors(on_interrupt=""):
        images = [_read(path) for path in common.image_paths(argv[1:])]
        body = json.dumps(request_body(images)) + "\n"
        if flags.FLAGS.out == "-":
            sys.stdout.write(body)
        else:
            _write(flags.FLAGS.out, body)
            print(f"wrote {len(images)} instance(s) to {flags.FLAGS.out}", file=sys.stderr)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:  # It exists (checked) but cannot be read: permissions, a folder.
        raise app.UsageError(f"cannot read {path!r} ({error.strerror}). Pass image files this "
                             "user can read.") from None


def _write(out: str, body: str) -> None:
    try:
        with open(out, "w") as file:
            file.write(body)
    except OSError as error:
        raise ConfigError("out", f"cannot write {out!r} ({error.strerror})",
                          "Pass a writable --out path, or --out=- for stdout.") from None
