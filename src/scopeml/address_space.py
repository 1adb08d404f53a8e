"""The address-space cap a child process puts on itself (a reader opening an untrusted file,
a model's probe run, a server job), so that memory stays bounded whatever the input."""

from __future__ import annotations


def cap_address_space(limit: int) -> None:
    """Cap this process's address space at ``limit`` bytes, or at the hard limit already set
    where that is lower: raising it is refused, and under a cluster's ``ulimit -v`` the reader
    probe failed on every file ("not allowed to raise maximum limit").

    Examples
    --------
    >>> import resource, subprocess, sys
    >>> code = ("import resource; from scopeml.address_space import cap_address_space; "
    ...         "resource.setrlimit(resource.RLIMIT_AS, (2**33, 2**33)); "
    ...         "cap_address_space(2**34); print(resource.getrlimit(resource.RLIMIT_AS))")
    >>> subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    '(8589934592, 8589934592)\\n'
    """
    import resource

    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
