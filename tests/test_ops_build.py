"""The build-or-fallback policy, arch flags, lazy import, and an nvcc compile check."""

import shutil
import subprocess
import sys
import warnings

import pytest
import torch

import cuda_ops
from cuda_ops import build, dispatch


@pytest.fixture
def fresh_build(monkeypatch):
    """A build state with no attempt made, and no warning issued yet."""
    monkeypatch.setattr(build, "_state", build.BuildState())
    monkeypatch.setattr(build, "_warned", False)
    return build


@pytest.mark.slow
def test_import_compiles_nothing():
    code = "import cuda_ops, gcgan_cli.cli, json; print(json.dumps(cuda_ops.status()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert '"attempted": false' in out.stdout


def test_failed_build_warns_once_then_falls_back(fresh_build, monkeypatch):
    calls = []

    def broken():
        calls.append(1)
        raise RuntimeError("Error building extension: nvcc fatal : Unsupported gpu architecture")

    monkeypatch.setattr(fresh_build, "_compile", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fresh_build.extension() is None
        assert fresh_build.extension() is None
    assert len(calls) == 1, "a failed build is tried once per process"
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "Unsupported gpu architecture" in messages[0]
    status = fresh_build.status()
    assert status["attempted"] and not status["built"] and "Unsupported" in status["error"]


def test_force_raises_with_cause_and_fix(fresh_build, monkeypatch):
    def broken():
        raise build.OpsBuildError("no CUDA toolkit found (nvcc); set CUDA_HOME")

    monkeypatch.setattr(fresh_build, "_compile", broken)
    with pytest.raises(cuda_ops.OpsBuildError, match="CUDA_HOME.*GCGAN_CUDA_OPS=off"):
        fresh_build.extension(strict=True)


def test_cpu_tensors_never_trigger_a_build(fresh_build, monkeypatch):
    monkeypatch.setattr(fresh_build, "_compile", lambda: pytest.fail("build attempted"))
    for policy in ("auto", "force", "off"):
        monkeypatch.setenv("GCGAN_CUDA_OPS", policy)
        assert dispatch.kernels_for(torch.zeros(1, 1, 2, 2), "auto") is None
    cuda_ops.upfirdn2d(torch.zeros(1, 1, 4, 4), torch.ones(2, 2))
    assert not fresh_build.status()["attempted"]


def test_policy_and_impl_validation(monkeypatch):
    monkeypatch.setenv("GCGAN_CUDA_OPS", "sometimes")
    with pytest.raises(ValueError, match="GCGAN_CUDA_OPS"):
        build.policy()
    monkeypatch.setenv("GCGAN_CUDA_OPS", " Force ")
    assert build.policy() == "force"
    with pytest.raises(ValueError, match="needs a CUDA tensor"):
        dispatch.kernels_for(torch.zeros(1), "cuda")


@pytest.mark.parametrize(
    "arch,expected",
    [
        ("9.0", ["-gencode=arch=compute_90,code=sm_90"]),
        ("9.0a", ["-gencode=arch=compute_90a,code=sm_90a"]),
        (
            "8.6;9.0+PTX",
            [
                "-gencode=arch=compute_86,code=sm_86",
                "-gencode=arch=compute_90,code=sm_90",
                "-gencode=arch=compute_90,code=compute_90",
            ],
        ),
        ("Hopper", ["-gencode=arch=compute_90,code=sm_90"]),
        ("7.5 8.0", ["-gencode=arch=compute_75,code=sm_75", "-gencode=arch=compute_80,code=sm_80"]),
    ],
)
def test_gencode_flags(arch, expected):
    assert build.gencode_flags(arch) == expected


@pytest.mark.parametrize("arch", ["sm_90", "", "9"])
def test_gencode_flags_reject_bad_lists(arch):
    with pytest.raises(build.OpsBuildError):
        build.gencode_flags(arch)


def test_arch_list_honours_environment(monkeypatch):
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    assert build.target_arch_list() == "9.0"
    assert build.build_key("9.0") != build.build_key("8.0"), "the cache key covers the archs"


def test_cache_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GCGAN_CACHE_DIR", str(tmp_path))
    assert build.cache_root() == tmp_path / "cuda_ops"


def test_sources_ship_with_the_package():
    for name in build.SOURCES + build.HEADERS:
        assert (build.SOURCE_DIR / name).is_file(), name


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
@pytest.mark.parametrize("source", [s for s in build.SOURCES if s.endswith(".cu")])
def test_kernels_compile_for_hopper(source, tmp_path):
    """The .cu files include only CUDA headers, so plain nvcc compiles them for sm_90."""
    result = subprocess.run(
        [
            "nvcc",
            "-c",
            "-O3",
            "-std=c++17",
            "-arch=sm_90",
            "-Werror",
            "all-warnings",
            str(build.SOURCE_DIR / source),
            "-o",
            str(tmp_path / "kernel.o"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "kernel.o").stat().st_size > 0
