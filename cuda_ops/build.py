"""Lazy, cached build of the CUDA extension and the build-or-fallback policy.

Nothing here runs at import. The first CUDA call of an op asks ``extension()``,
which compiles ``csrc/`` with ``torch.utils.cpp_extension`` + ninja into a cache
folder keyed by the sources, torch, CUDA and the target architectures, so a
changed source or GPU never picks up a stale binary.

Policy (``GCGAN_CUDA_OPS``):
- ``auto`` (default): use the kernels for CUDA tensors when they build; when they
  do not, warn once with the cause and use the pure-PyTorch reference.
- ``off``: always use the reference.
- ``force``: a failed build raises ``OpsBuildError`` instead of falling back.
CPU tensors always take the reference path: the kernels are CUDA-only.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

POLICIES = ("auto", "off", "force")
SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
SOURCES = ("bindings.cpp", "upfirdn2d_kernel.cu", "fused_bias_act_kernel.cu")
HEADERS = ("kernels.h", "element.cuh")

_FIX_HINTS = (
    "needs a CUDA build of torch, nvcc from a CUDA toolkit matching torch.version.cuda "
    "(set CUDA_HOME if it is not on PATH), ninja (pip install ninja) and a C++ compiler; "
    "set GCGAN_CUDA_OPS=off to use the pure-PyTorch ops"
)


class OpsBuildError(RuntimeError):
    """The CUDA extension could not be built or loaded (raised under ``force``)."""


@dataclass
class BuildState:
    attempted: bool = False
    module: ModuleType | None = None
    error: str | None = None
    build_dir: str | None = None
    seconds: float | None = None
    arch_list: str | None = None


_state = BuildState()
_lock = threading.Lock()
_warned = False


def policy() -> str:
    """The active policy from ``GCGAN_CUDA_OPS`` (read on every call, so tests can set it)."""
    value = os.environ.get("GCGAN_CUDA_OPS", "auto").strip().lower() or "auto"
    if value not in POLICIES:
        raise ValueError(f"GCGAN_CUDA_OPS={value!r} is not one of {', '.join(POLICIES)}")
    return value


def cache_root() -> Path:
    """Where builds are kept: ``$GCGAN_CACHE_DIR/cuda_ops`` or ``~/.cache/gcgan/cuda_ops``."""
    base = os.environ.get("GCGAN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gcgan"
    )
    return Path(base) / "cuda_ops"


def target_arch_list() -> str:
    """``TORCH_CUDA_ARCH_LIST`` when set, else the capabilities of the visible GPUs."""
    env = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if env:
        return env
    caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
    return ";".join(f"{major}.{minor}" for major, minor in caps)


def gencode_flags(arch_list: str) -> list[str]:
    """nvcc ``-gencode`` flags for an arch list such as ``"8.0;9.0+PTX"`` or ``"9.0a"``.

    Passing explicit flags keeps torch from adding its own, and leaves the process
    environment untouched.
    """
    named = {"Ampere": "8.0;8.6", "Ada": "8.9", "Hopper": "9.0", "Blackwell": "10.0;12.0"}
    flags: list[str] = []
    for item in arch_list.replace(",", ";").replace(" ", ";").split(";"):
        item = item.strip()
        if not item:
            continue
        if item in named:
            flags += gencode_flags(named[item])
            continue
        ptx = item.endswith("+PTX")
        version = item[:-4] if ptx else item
        major, _, minor = version.partition(".")
        suffix = ""
        if minor[-1:].isalpha():
            minor, suffix = minor[:-1], minor[-1]
        if not (major.isdigit() and minor.isdigit()):
            raise OpsBuildError(f"TORCH_CUDA_ARCH_LIST entry {item!r} is not like 8.6, 9.0a or 9.0+PTX")
        num = f"{major}{minor}{suffix}"
        flags.append(f"-gencode=arch=compute_{num},code=sm_{num}")
        if ptx:
            flags.append(f"-gencode=arch=compute_{num},code=compute_{num}")
    if not flags:
        raise OpsBuildError("no CUDA architecture to build for (TORCH_CUDA_ARCH_LIST is empty)")
    return flags


def build_key(arch_list: str) -> str:
    """Hash of everything that makes a build valid: sources, torch, CUDA, Python, archs."""
    digest = hashlib.sha256()
    for name in SOURCES + HEADERS:
        digest.update(name.encode())
        digest.update((SOURCE_DIR / name).read_bytes())
    for part in (torch.__version__, str(torch.version.cuda), sys.version, arch_list):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def _compile() -> tuple[ModuleType, str, str]:
    """Compile (or load the cached build of) the extension. Raises with the cause."""
    from torch.utils import cpp_extension

    if not torch.cuda.is_available():
        raise OpsBuildError("CUDA is not available to torch")
    if torch.version.cuda is None:
        raise OpsBuildError(f"torch {torch.__version__} is a CPU-only build")
    if cpp_extension.CUDA_HOME is None:
        raise OpsBuildError("no CUDA toolkit found (nvcc); set CUDA_HOME")
    try:
        cpp_extension.verify_ninja_availability()
    except RuntimeError as exc:
        raise OpsBuildError("ninja is not installed (pip install ninja)") from exc
    arch_list = target_arch_list()
    cuda_flags = ["-O3", "--use_fast_math", *gencode_flags(arch_list)]
    key = build_key(arch_list)
    build_dir = cache_root() / key
    build_dir.mkdir(parents=True, exist_ok=True)
    module = cpp_extension.load(
        name=f"gcgan_cuda_ops_{key}",
        sources=[str(SOURCE_DIR / name) for name in SOURCES],
        extra_include_paths=[str(SOURCE_DIR)],
        extra_cflags=["-O3"],
        extra_cuda_cflags=cuda_flags,
        build_directory=str(build_dir),
        verbose=os.environ.get("GCGAN_DEBUG") == "1",
    )
    return module, str(build_dir), arch_list


def _short(exc: BaseException) -> str:
    """The last meaningful lines of a (possibly huge) compiler error."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    picked = (errors or lines)[-3:]
    return " | ".join(picked)[:600] or type(exc).__name__


def extension(strict: bool = False) -> ModuleType | None:
    """The compiled extension, building it on first use; None when it cannot be had.

    strict=True raises ``OpsBuildError`` (with the cause and the fix) instead of
    returning None. A failure is remembered: the build is tried once per process.
    """
    global _warned
    with _lock:
        if not _state.attempted:
            _state.attempted = True
            start = time.perf_counter()
            try:
                _state.module, _state.build_dir, _state.arch_list = _compile()
            except Exception as exc:  # any failure of the toolchain means fallback
                _state.error = _short(exc)
            _state.seconds = time.perf_counter() - start
    if _state.module is not None:
        return _state.module
    if strict:
        raise OpsBuildError(f"CUDA ops unavailable: {_state.error}. The build {_FIX_HINTS}.")
    if not _warned:
        _warned = True
        warnings.warn(
            f"gcgan cuda_ops: CUDA build failed ({_state.error}); using the pure-PyTorch "
            "reference ops. Set GCGAN_CUDA_OPS=force to make this an error.",
            RuntimeWarning,
            stacklevel=3,
        )
    return None


def status() -> dict:
    """What is known about the build, without triggering one (for ``gcgan doctor``)."""
    return {
        "policy": policy(),
        "attempted": _state.attempted,
        "built": _state.module is not None,
        "error": _state.error,
        "build_dir": _state.build_dir,
        "seconds": _state.seconds,
        "arch_list": _state.arch_list,
    }
