#!/usr/bin/env python3
"""The agent's own instructions in a callgrind output file.

Usage: scripts/callgrind_agent_cost.py FILE [OBJECT_REGEX]

Prints one number: the self cost of every function in the agent's object
(libleakwatch.so unless OBJECT_REGEX says otherwise) plus the inclusive cost of
every call it makes outside itself (locks, clock, libunwind, libc), except the
call each hook makes to the real function of the same name (symbol versions
aside), the thread trampoline's call of the thread's start routine and
StartMain's call of the program's main. Reads callgrind's
format (name compression, "calls=" lines followed by the call's inclusive
cost); used by scripts/bench-instructions.
"""
import re
import sys


def bare(function):
    """A function name without its symbol version (mysql_close@@libmysqlclient_18)."""
    return function.split("@", 1)[0] if function else function


def forwards(function):
    """True for the agent's thread trampoline, whose call out runs the thread,
    for StartMain, whose call out runs the program's main, and for the agent's
    __libc_start_main (callgrind names it "(below main)"), whose call of the
    real one runs the whole program."""
    return function is not None and ("Trampoline" in function or
                                     "StartMain(" in function or
                                     function == "(below main)")


def agent_cost(path, agent):
    names = {"ob": {}, "fn": {}, "fl": {}}

    def name(kind, rest):
        m = re.match(r"\((\d+)\)(?: (.*))?$", rest)
        if not m:
            return rest
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), "?")

    ob = fn = cob = cfn = None
    in_call = False
    total = 0
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            key, _, rest = line.partition("=")
            if key == "ob":
                ob = name("ob", rest)
                continue
            if key == "fn":
                fn = name("fn", rest)
                cob = None
                continue
            if key == "cob":
                cob = name("ob", rest)
                continue
            if key == "cfn":
                cfn = name("fn", rest)
                continue
            if key in ("fl", "fi", "fe", "cfi", "cfl"):
                name("fl", rest)
                continue
            if key == "calls":
                in_call = True
                continue
            if not line or not (line[0].isdigit() or line[0] in "+-*"):
                continue
            parts = line.split()
            cost = int(parts[1]) if len(parts) > 1 else 0
            mine = ob is not None and agent.search(ob) is not None
            if in_call:
                in_call = False
                callee = cob if cob is not None else ob
                if (mine and not agent.search(callee) and
                        bare(cfn) != bare(fn) and not forwards(fn)):
                    total += cost
                cob = None
            elif mine:
                total += cost
    return total


if __name__ == "__main__":
    pattern = re.compile(sys.argv[2] if len(sys.argv) > 2 else r"libleakwatch\.so")
    print(agent_cost(sys.argv[1], pattern))
