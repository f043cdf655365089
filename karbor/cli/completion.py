"""``karborctl completion bash``: a completion script generated from the parser itself.

argcomplete (when installed) completes dynamically; this script needs nothing but bash,
and being generated from the parser it cannot drift from the commands.
"""

from __future__ import annotations

import argparse
import shlex


def _words(parser: argparse.ArgumentParser) -> tuple[list[str], dict[str, argparse.ArgumentParser]]:
    options, children = [], {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                children[name] = child
        elif action.option_strings and action.help is not argparse.SUPPRESS:
            options.extend(o for o in action.option_strings if o.startswith("--"))
    return options, children


def table(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Command path ("_ plan list") -> the words that may come next."""
    out: dict[str, list[str]] = {}

    def walk(node: argparse.ArgumentParser, path: str) -> None:
        options, children = _words(node)
        out[path] = sorted(children) + sorted(set(options))
        for name, child in children.items():
            walk(child, f"{path} {name}")

    walk(parser, "_")
    return out


def bash(parser: argparse.ArgumentParser, prog: str = "karborctl") -> str:
    func = "_" + prog.replace("-", "_")
    entries = "\n".join(f"    [{shlex.quote(path)}]={shlex.quote(' '.join(words))}"
                        for path, words in table(parser).items())
    return f"""# bash completion for {prog}; load with: source <({prog} completion bash)
declare -gA {func}_words=(
{entries}
)
{func}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" path="_" word i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        [[ "$word" == -* ]] && continue
        if [[ -n "${{{func}_words["$path $word"]+set}}" ]]; then
            path="$path $word"
        fi
    done
    COMPREPLY=($(compgen -W "${{{func}_words["$path"]}}" -- "$cur"))
}}
complete -o default -F {func} {prog}
"""
