"""Every setting as a command-line flag, generated from :class:`~autolabel.settings.Settings`.

A setting's flag is its path with dots and dashes: ``policy.target_precision`` is
``--policy.target-precision``, the flag of ``AUTOLABEL_POLICY__TARGET_PRECISION``. A
flag takes exactly the text its variable would (numbers, ``true``/``false``, names,
JSON for lists) and wins over the variable. Secrets (``SecretStr`` fields) have no
flag: a command line is visible to every user of the machine (``ps``), so they come
from the environment only. A new field or section of the settings gets its flag with
no change here.

>>> parser = argparse.ArgumentParser(prog="autolabel worker", allow_abbrev=False)
>>> add_setting_flags(parser)
>>> args = parser.parse_args(["--kafka.bootstrap-servers", "k1:9092", "--topics.create", "false"])
>>> {path: given.text for path, given in given_flags(args).items()}
{('kafka', 'bootstrap_servers'): 'k1:9092', ('topics', 'create'): 'false'}
>>> "--snapshot.key" in parser._option_string_actions  # a secret: environment only
False
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import typing
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any, NoReturn

from autolabel.settings import GivenFlag, SettingField, setting_fields

DEST = "setting_flags"
"""Where the given setting flags collect in the parsed namespace."""


class SettingAction(argparse.Action):
    """Stores a setting's text under its path, with the flag as typed (for errors)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        self.path: tuple[str, ...] = kwargs.pop("path")
        super().__init__(option_strings, DEST, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        given = dict(getattr(namespace, DEST, None) or {})
        given[self.path] = GivenFlag(option_string or self.option_strings[0], str(values))
        setattr(namespace, DEST, given)


def given_flags(args: argparse.Namespace) -> dict[tuple[str, ...], GivenFlag]:
    """The settings given as flags: path to flag and text (for ``load_settings``)."""
    return dict(getattr(args, DEST, None) or {})


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, in one help group per settings section."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    secrets: dict[str, list[str]] = {}
    for field in setting_fields():
        section = field.path[0] if len(field.path) > 1 else ""
        if field.secret:
            secrets.setdefault(section, []).append(field.variable)
            continue
        if section not in groups:
            prefix = f"AUTOLABEL_{section.upper()}__*" if section else "AUTOLABEL_*"
            title = f"{section} settings" if section else "settings"
            groups[section] = parser.add_argument_group(f"{title} ({prefix})")
        groups[section].add_argument(
            field.flag,
            action=SettingAction,
            path=field.path,
            metavar=metavar(field),
            help=help_text(field),
        )
    for section, variables in secrets.items():
        group = groups[section]
        note = f"secrets, from the environment only: {', '.join(variables)}"
        group.description = f"{group.description}; {note}" if group.description else note


def add_setting_alias(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    path: tuple[str, ...],
    help: str,
) -> None:
    """A command's own short name for one setting (``evaluate --target-precision``).

    It sets the same setting as the generated flag, and an invalid value is reported
    under the name typed.
    """
    field = next(f for f in setting_fields() if f.path == path)
    parser.add_argument(
        flag, action=SettingAction, path=path, metavar=metavar(field), help=help.replace("%", "%%")
    )


def metavar(field: SettingField) -> str:
    """What a flag takes, for the help: ``{a,b}``, ``MS``, ``SECONDS``, ``N``, ``FILE`` ...

    >>> fields = {f.flag: f for f in setting_fields()}
    >>> [metavar(fields[f]) for f in ("--policy.mode", "--snapshot.interval-s", "--http.port")]
    ['{certified,fixed}', 'SECONDS', 'N']
    """
    if field.choices:
        return "{" + ",".join(field.choices) + "}"
    if field.unit:
        return {"milliseconds": "MS", "seconds": "SECONDS", "bytes": "BYTES"}[field.unit]
    kinds = field.kinds
    if kinds == [bool]:
        return "{true,false}"
    if kinds and all(t is int for t in kinds):
        return "N"
    if kinds and all(t in (int, float) for t in kinds):
        return "X"
    if kinds and all(isinstance(t, type) and issubclass(t, PurePath) for t in kinds):
        return "FILE"
    return "TEXT" if field.scalar else "JSON"


def help_text(field: SettingField) -> str:
    """The description, then the unit, the default and the variable.

    >>> fields = {f.flag: f for f in setting_fields()}
    >>> print(help_text(fields["--labeler.batch-timeout-ms"]))
    Longest wait for a micro-batch to fill. In milliseconds; default 20;\
 AUTOLABEL_LABELER__BATCH_TIMEOUT_MS
    """
    parts = []
    if field.unit:
        parts.append(f"in {field.unit}")
    parts.append(f"default {_default_text(field)}")
    parts.append(field.variable)
    details = "; ".join(parts)
    description = (field.info.description or "").strip()
    text = f"{description} {details[0].upper()}{details[1:]}" if description else details
    return text.replace("%", "%%")


def _default_text(field: SettingField) -> str:
    text = field.default_text
    if text is None:
        return "unset"
    return text if text else '"" (empty)'


class HelpFormatter(argparse.HelpFormatter):
    """Shows defaults of a command's own options; keeps setting flags out of the usage line.

    The usage line lists the command's own options and ends in ``[--SETTING VALUE ...]``;
    every setting is listed in its group below it.
    """

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=min(_width(), 100))

    def add_usage(
        self,
        usage: str | None,
        actions: typing.Iterable[argparse.Action],
        groups: typing.Iterable[argparse._MutuallyExclusiveGroup],
        prefix: str | None = None,
    ) -> None:
        actions = list(actions)
        own = [a for a in actions if not isinstance(a, SettingAction)]
        if len(own) < len(actions):  # one placeholder for all the settings
            own.append(argparse.Action(["--SETTING"], "setting", metavar="VALUE ..."))
        super().add_usage(usage, own, groups, prefix)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not isinstance(action, SettingAction)
            and action.option_strings
            and default is not None
            and default is not False
            and default != argparse.SUPPRESS
            and "%(default)" not in text
            and "default" not in text
        ):
            text += " (default: %(default)s)"
        return text


def _width() -> int:
    return shutil.get_terminal_size((100, 24)).columns - 2


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, with a hint for a misspelled flag.

    ``autolabel worker: unrecognized arguments: --kafka.bootstrap-server (did you mean
    --kafka.bootstrap-servers?) (see `autolabel worker --help`)``; exit code 2.
    """

    def error(self, message: str) -> NoReturn:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            known = self._all_flags()
            hints = []
            for token in message.removeprefix(prefix).split():
                flag = token.split("=", 1)[0]
                close = difflib.get_close_matches(flag, known, n=1, cutoff=0.75)
                if flag.startswith("--") and close:
                    hints.append(f"did you mean {close[0]}?")
            if hints:
                message += " (" + "; ".join(hints) + ")"
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")

    def _all_flags(self) -> list[str]:
        flags = list(self._option_string_actions)
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    flags += list(sub._option_string_actions)
        return sorted(set(flags))
