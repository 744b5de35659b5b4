"""Finding image files: the extensions TensorFlow decodes, and folders expanded to their images.

Kept free of TensorFlow and of flags so the serving helpers (`predict`, `rest_request`) can share
it without loading training code.
"""

import os

# What `tf.io.decode_image` reads: Keras' folder reader's formats, and WebP (TensorFlow 2.21
# decodes it; the decode budget reads its header).
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp")


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def expand_image_paths(paths: list[str]) -> list[str]:
    """Files as given (whatever their extension); folders become their image files, sorted."""
    expanded = []
    for path in paths:
        if os.path.isdir(path):
            expanded += sorted(os.path.join(root, name) for root, _, names in os.walk(path)
                               for name in names if is_image_file(name))
        else:
            expanded.append(path)
    return expanded


def utf8_name(path: str) -> bool:
    """Whether `path` is valid UTF-8. A file name that is not (e.g. Latin-1 bytes from an old
    archive) comes from `os.walk` with surrogate escapes, which a TensorFlow string refuses."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_path(path: str) -> str:
    """`path` as printable UTF-8 text: undecodable bytes of its name become `\\xNN` escapes, so
    logs and JSON can show it."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
