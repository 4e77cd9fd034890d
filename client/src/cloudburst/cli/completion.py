"""Shell completion for the `cloudburst` command, generated from its argument parser (so it never drifts)."""
from __future__ import annotations

import argparse

_TEMPLATE = """_cloudburst() {
  local cur=${COMP_WORDS[COMP_CWORD]} command="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      --profile) ((i++)) ;;
      -*) ;;
      *) command=${COMP_WORDS[i]}; break ;;
    esac
  done
  case $command in
%(cases)s
    *) COMPREPLY=($(compgen -W "%(top)s" -- "$cur")) ;;
  esac
}
complete -o default -F _cloudburst cloudburst"""


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions for option in action.option_strings]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def bash_completion(parser: argparse.ArgumentParser) -> str:
    """A bash script completing commands, their options and (by default) file names."""
    commands = _subcommands(parser)
    cases = []
    for name, sub in commands.items():
        words = _options(sub)
        for action in sub._actions:
            if action.choices and not action.option_strings:
                words += list(action.choices)
        cases.append(f'    {name}) COMPREPLY=($(compgen -W "{" ".join(words)}" -- "$cur")) ;;')
    top = " ".join([*commands, *_options(parser)])
    return _TEMPLATE % {"cases": "\n".join(cases), "top": top}
