"""Config fields as absl flags: one flag per field, same name, default and help from the field.

A field's Python type picks the flag type (bool, integer, float, string, list for tuples, enum
for a string with `choices`). `--helpfull` groups the flags by config group, in the order of
`tlkeras.config.GROUPS`. Reading the flags back gives the dataclasses, so no default or help
text is written twice.
"""

import dataclasses

from absl import flags

from tlkeras.config import GROUPS, Config


def define_group(group_cls, only: tuple[str, ...] | None = None,
                 flag_values: flags.FlagValues | None = None) -> None:
    """Defines a flag for every field of a config group (or the fields named in `only`)."""
    flag_values = flags.FLAGS if flag_values is None else flag_values
    number = list(GROUPS.values()).index(group_cls) + 1
    module_name = f"tlkeras ({number}) {group_cls.TITLE}"
    for field in dataclasses.fields(group_cls):
        if only is None or field.name in only:
            _define(field, module_name, flag_values)


def define_all(flag_values: flags.FlagValues | None = None) -> None:
    for group_cls in GROUPS.values():
        define_group(group_cls, flag_values=flag_values)


def read_group(group_cls, flag_values: flags.FlagValues | None = None):
    """The group's dataclass from parsed flags; fields without a flag keep their defaults."""
    flag_values = flags.FLAGS if flag_values is None else flag_values
    values = {field.name: _value(flag_values[field.name].value, field)
              for field in dataclasses.fields(group_cls) if field.name in flag_values}
    return group_cls(**values)


def read_config(flag_values: flags.FlagValues | None = None) -> Config:
    return Config(**{name: read_group(cls, flag_values) for name, cls in GROUPS.items()})


def _define(field: dataclasses.Field, module_name: str, flag_values) -> None:
    default, help_text = field.default, field.metadata["help"]
    choices = field.metadata.get("choices")
    common = {"flag_values": flag_values, "module_name": module_name}
    if isinstance(default, bool):
        flags.DEFINE_bool(field.name, default, help_text, **common)
    elif isinstance(default, int):
        flags.DEFINE_integer(field.name, default, help_text, **common)
    elif isinstance(default, float):
        flags.DEFINE_float(field.name, default, help_text, **common)
    elif isinstance(default, tuple):
        flags.DEFINE_list(field.name, list(default), help_text, **common)
    elif choices:
        flags.DEFINE_enum(field.name, default, list(choices), help_text, **common)
    else:
        flags.DEFINE_string(field.name, default, help_text, **common)


def _value(value, field: dataclasses.Field):
    return tuple(value) if isinstance(field.default, tuple) else value
