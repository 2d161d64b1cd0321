"""Who owns a lock or a staging folder, and whether that process still runs.

An owner is {'pid', 'host', 'start'}: the process id, the host name and (on Linux) the process's
start time in clock ticks since boot, so that a dead process whose id was reused by another one
is still recognised as dead. Liveness can only be known on this host: an owner on another host
counts as alive (its lock is never taken over).
"""
import os
import socket


def hostname():
    try:
        return socket.gethostname() or 'localhost'
    except OSError:
        return 'localhost'


def process_start(pid):
    """The start time of process `pid` (clock ticks since boot, Linux), or None when unknown."""
    try:
        with open(f'/proc/{int(pid)}/stat', encoding='ascii', errors='replace') as f:
            stat = f.read()
        return int(stat[stat.rindex(')') + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def current_owner():
    pid = os.getpid()
    return {'pid': pid, 'host': hostname(), 'start': process_start(pid)}


def owner_alive(owner):
    """True when the process `owner` names may still run: it runs on this host with the same
    start time, or it is on another host (cannot be checked). False only when it is known dead."""
    if not isinstance(owner, dict):
        return False
    pid, host = owner.get('pid'), owner.get('host')
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if host != hostname():
        return True
    if pid == os.getpid():
        return owner.get('start') in (None, process_start(pid))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                   # runs, as another user
    except OSError:
        return True
    start = owner.get('start')
    now = process_start(pid)
    return start is None or now is None or start == now


def describe_owner(owner):
    """'process 1234 on host' for messages."""
    if not isinstance(owner, dict):
        return 'an unknown process'
    host = owner.get('host') or 'an unknown host'
    return f'process {owner.get("pid")} on {host}'
