"""Process isolation for a worker: descriptors, identity, rlimits, Landlock and seccomp.

Applied in the worker right after it is forked from the zygote, before it ever sees a
script. RestrictedPython is a code transformer, not a jail: this module is the jail.
Each step reports whether the kernel enforced it; `report()` says what holds here.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
from typing import Any

NOBODY_UID = 65534
CHANNEL_FD = 3
_MAX_FD = 4096

# Syscalls a worker never needs; refused with EPERM (seccomp) once the worker is set up.
DENIED_SYSCALLS = (
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "execve",
    "execveat", "fork", "vfork", "clone", "clone3", "ptrace", "process_vm_readv",
    "process_vm_writev", "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "kill", "tkill",
    "mount", "umount2", "unshare", "setns", "pivot_root", "chroot", "keyctl", "add_key",
    "request_key", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "personality",
    "open_by_handle_at", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "kexec_load", "mknod", "mknodat",
)

_state: dict[str, Any] = {"baseline_vm": 0, "enforced": {}}


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded once in the zygote, inherited by workers
_PR_SET_DUMPABLE = 4
_PR_SET_SECCOMP = 22
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_MODE_FILTER = 2


def _prctl(option: int, arg: int, arg2: Any = 0) -> bool:
    return bool(_LIBC.prctl(option, arg, arg2, 0, 0) == 0)


def read_vm_size() -> int:
    """This process's virtual size in bytes (0 if /proc is unavailable).

    Raw os.read and bytes parsing on purpose: text I/O would touch (and so copy) far more
    of the zygote's shared pages in each worker.
    """
    try:
        fd = os.open("/proc/self/status", os.O_RDONLY)
    except OSError:
        return 0
    try:
        data = os.read(fd, 65536)
    finally:
        os.close(fd)
    for line in data.split(b"\n"):
        if line.startswith(b"VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _close_descriptors(channel_fd: int) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if channel_fd != CHANNEL_FD:
        os.dup2(channel_fd, CHANNEL_FD)
    os.closerange(CHANNEL_FD + 1, _MAX_FD)  # also closes devnull's own descriptor


def _drop_identity() -> bool:
    # Only root can switch users; as root the worker becomes `nobody`, so it can neither
    # signal the host's processes nor read the instance folder's 0600 key file.
    if os.geteuid() != 0:
        return False
    os.setgroups([])
    os.setgid(NOBODY_UID)
    os.setuid(NOBODY_UID)
    return True


def _set_static_rlimits() -> None:
    for limit, value in (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_NOFILE, CHANNEL_FD + 1),
        (resource.RLIMIT_NPROC, 0),
    ):
        resource.setrlimit(limit, (value, value))


_LANDLOCK_CREATE_RULESET = 444
_LANDLOCK_RESTRICT_SELF = 446


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def _landlock() -> str:
    """Deny every filesystem access (and, where supported, TCP and outside signals)."""
    libc = _LIBC
    abi = libc.syscall(_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return "unsupported"
    fs_bits = {1: 13, 2: 14, 3: 15, 4: 15, 5: 16}.get(abi, 16)
    attr = _RulesetAttr(
        handled_access_fs=(1 << fs_bits) - 1,
        handled_access_net=0b11 if abi >= 4 else 0,
        scoped=0b11 if abi >= 6 else 0,
    )
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    fd = libc.syscall(
        _LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )
    if fd < 0:
        return f"failed (errno {ctypes.get_errno()})"
    try:
        if libc.syscall(_LANDLOCK_RESTRICT_SELF, fd, ctypes.c_uint32(0)) != 0:
            return f"failed (errno {ctypes.get_errno()})"
    finally:
        os.close(fd)
    return f"abi {abi}"


_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_ERRNO = 0x00050000


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


class SeccompFilter:
    """A seccomp program compiled once by libseccomp in the zygote, loaded by each worker."""

    def __init__(self, program: bytes | None, status: str) -> None:
        self.status = status
        self._program = program
        self._fprog: _SockFprog | None = None
        if program:
            count = len(program) // ctypes.sizeof(_SockFilter)
            filters = (_SockFilter * count).from_buffer_copy(program)
            self._filters = filters
            self._fprog = _SockFprog(count, ctypes.cast(filters, ctypes.POINTER(_SockFilter)))

    def load(self) -> str:
        """Install the filter in the calling process (needs no_new_privs first)."""
        if self._fprog is None:
            return self.status
        if not _prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(self._fprog)):
            return f"failed (errno {ctypes.get_errno()})"
        return self.status


def compile_seccomp() -> SeccompFilter:
    """Build the deny-list filter with libseccomp and export it as raw BPF."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        # ctypes.util imports subprocess; only reach for it when the usual name fails.
        from ctypes import util as ctypes_util

        name = ctypes_util.find_library("seccomp")
        try:
            lib = ctypes.CDLL(name or "libseccomp.so")
        except OSError:
            return SeccompFilter(None, "unsupported (libseccomp not found)")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not ctx:
        return SeccompFilter(None, "failed (seccomp_init)")
    read_end, write_end = os.pipe()
    try:
        for syscall in DENIED_SYSCALLS:
            number = lib.seccomp_syscall_resolve_name(syscall.encode())
            if number >= 0 and lib.seccomp_rule_add(ctx, _SCMP_ACT_ERRNO | errno.EPERM, number, 0):
                return SeccompFilter(None, f"failed (rule for {syscall})")
        if lib.seccomp_export_bpf(ctx, write_end) != 0:
            return SeccompFilter(None, "failed (seccomp_export_bpf)")
        os.close(write_end)
        write_end = -1
        program = b""
        while chunk := os.read(read_end, 65536):
            program += chunk
    finally:
        lib.seccomp_release(ctx)
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    return SeccompFilter(program, f"{len(DENIED_SYSCALLS)} syscalls refused with EPERM")


def harden_worker(
    channel_fd: int, workdir: str, seccomp: SeccompFilter, baseline_vm: int
) -> None:
    """Cut a freshly forked worker off from everything but its channel to the host.

    `baseline_vm` is the zygote's virtual size at the fork (the worker's starting size),
    measured there so the worker need not read /proc.
    """
    os.setsid()
    _close_descriptors(channel_fd)
    os.chdir(workdir)
    if os.environ:  # the zygote starts with an empty environment; keep it so
        os.environ.clear()
    _state["baseline_vm"] = baseline_vm
    enforced: dict[str, Any] = {"uid_nobody": _drop_identity()}
    enforced["no_new_privs"] = _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    enforced["not_dumpable"] = _prctl(_PR_SET_DUMPABLE, 0)  # no ptrace, no /proc/pid/mem
    enforced["landlock"] = _landlock()  # needs a free descriptor: before RLIMIT_NOFILE
    _set_static_rlimits()
    enforced["seccomp"] = seccomp.load()
    _state["enforced"] = enforced


def apply_job_limits(limits: dict[str, Any]) -> None:
    """Set the job's CPU and memory rlimits; the parent's kill enforces wall time."""
    cpu = max(1, int(limits.get("cpu_time_s", 10)))
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(used.ru_utime + used.ru_stime) + 1
    # SIGXCPU at the soft limit, SIGKILL one second later for code stuck in C.
    resource.setrlimit(resource.RLIMIT_CPU, (spent + cpu, spent + cpu + 1))
    memory = max(16, int(limits.get("memory_mb", 256))) * 1024 * 1024
    if _state["baseline_vm"]:
        resource.setrlimit(resource.RLIMIT_AS, (_state["baseline_vm"] + memory,) * 2)


def enforced() -> dict[str, Any]:
    """What harden_worker achieved in this worker (for report())."""
    return dict(_state["enforced"])
