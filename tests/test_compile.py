"""torch.compile on the CPU: the tiny G and D trace whole (fullgraph, no graph break) and give the eager
outputs, also when every resampling and activation runs through the registered `gcgan::` operators
(the CUDA path's structure); `gcgan train --compile` and `gcgan sample --compile` run, resume and
write what the eager runs write. The tests use the eager or aot_eager backends (the same graphs, no
code generation) through GCGAN_COMPILE_BACKEND; inductor, which builds C++ with gcc, is marked slow.
GPU-only checks are marked `cuda`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cuda_ops
from cuda_ops import compiler
from gcgan_cli import cli
from gcgan_cli.checkpoint import load_checkpoint
from gcgan_cli.core.model import Discriminator, Generator, preset
from gcgan_cli.core.training.run_dir import read_metrics

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "tiny", "--workers", "0", "--batch", "4"]
KERNEL_OPS = {torch.ops.gcgan.upfirdn2d.default, torch.ops.gcgan.fused_bias_act.default}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test compiles from scratch: no graph cached by an earlier test's modules."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture
def through_the_operators(monkeypatch):
    """The public ops choose the kernel path for CPU tensors, so the networks call the registered
    operators (whose CPU kernels are the reference twins), as they do on a GPU."""
    chosen = object()  # what kernels_for returns is only compared with None
    for name in ("cuda_ops.upfirdn2d", "cuda_ops.fused_act"):
        monkeypatch.setattr(sys.modules[name], "kernels_for", lambda x, impl: chosen)


def tiny_networks(seed: int = 0):
    torch.manual_seed(seed)
    config = preset("tiny")
    g, d = Generator(config), Discriminator(config, gaze=True)
    z = torch.randn(3, config.style_dim)
    gaze = (torch.rand(3, 2) - 0.5) * 0.8
    return g, d, z, gaze


def recording(graphs):
    """A backend that keeps each FX graph dynamo hands it and runs it as traced."""

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    return backend


def compare_compiled(backend):
    """G's forward and D's forward + backward, compiled whole with `backend`, against eager."""
    g, d, z, gaze = tiny_networks()
    g_c = torch.compile(g, backend=backend, fullgraph=True)
    d_c = torch.compile(d, backend=backend, fullgraph=True)
    with torch.no_grad():
        eager, compiled = g(z, gaze, randomize_noise=False), g_c(z, gaze, randomize_noise=False)
    for name in ("image", "seg", "seg_coarse", "latent"):
        torch.testing.assert_close(getattr(compiled, name), getattr(eager, name), msg=name)
    grads = []
    for net in (d, d_c):
        d.zero_grad(set_to_none=True)
        net(eager.image, eager.seg, gaze).square().sum().backward()
        grads.append({name: p.grad.clone() for name, p in d.named_parameters()})
    torch.testing.assert_close(grads[1], grads[0])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_tiny_g_and_d_trace_whole_and_match_eager(backend):
    compare_compiled(backend)


@pytest.mark.slow
def test_tiny_g_and_d_compile_with_inductor_on_the_cpu():
    """inductor generates C++ and builds it with gcc: about a minute on 2 cores."""
    compare_compiled("inductor")


@pytest.mark.slow
def test_the_networks_trace_through_the_registered_operators(through_the_operators):
    graphs = []
    compare_compiled(recording(graphs))
    called = {node.target for gm in graphs for node in gm.graph.nodes}
    assert KERNEL_OPS <= called, "the resampling and activations reach the graphs as gcgan:: operators"
    graphs.clear()
    torch._dynamo.reset()
    compare_compiled("aot_eager")  # forward and backward graphs through the operators' registered autograd


@pytest.mark.slow
def test_the_native_cpu_path_has_no_operator_calls():
    graphs = []
    compare_compiled(recording(graphs))
    assert not KERNEL_OPS & {node.target for gm in graphs for node in gm.graph.nodes}


@pytest.mark.slow
def test_the_operators_trace_in_a_compiled_function():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=gen, requires_grad=True)
    b = torch.randn(3, generator=gen, requires_grad=True)
    k = cuda_ops.make_kernel([1, 3, 3, 1])

    def ops(t, bias):
        up = torch.ops.gcgan.upfirdn2d(t, k * 4, (2, 2), (1, 1), (2, 1, 2, 1))
        down = torch.ops.gcgan.upfirdn2d(up, k, (1, 1), (2, 2), (1, 1, 1, 1))
        return torch.ops.gcgan.fused_bias_act(down, bias, 0.2, 2**0.5)

    def reference(t, bias):
        up = cuda_ops.upfirdn2d(t, k * 4, up=2, pad=(2, 1), impl="ref")
        return cuda_ops.fused_leaky_relu(cuda_ops.upfirdn2d(up, k, down=2, pad=(1, 1), impl="ref"), bias, impl="ref")

    compiled = torch.compile(ops, backend="aot_eager", fullgraph=True)
    got, want = compiled(x, b), reference(x, b)
    torch.testing.assert_close(got, want)
    w = torch.randn(want.shape, generator=gen)
    torch.testing.assert_close(
        torch.autograd.grad((got * w).sum(), (x, b)), torch.autograd.grad((want * w).sum(), (x, b))
    )
    bigger = torch.randn(3, 3, 12, 10, generator=gen)  # a dynamic-shape recompile: the fake kernels' sizes
    torch.testing.assert_close(compiled(bigger, b), reference(bigger, b))


def test_the_backend_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(compiler.BACKEND_ENV, raising=False)
    assert compiler.backend() == "inductor"
    monkeypatch.setenv(compiler.BACKEND_ENV, " aot_eager ")
    assert compiler.backend() == "aot_eager"
    monkeypatch.setenv(compiler.BACKEND_ENV, "inductr")
    with pytest.raises(ValueError, match="GCGAN_COMPILE_BACKEND='inductr'.*inductor"):
        compiler.backend()


# --- gcgan train / sample --compile ---


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("compile")
    prep = root / "prep"
    assert cli.run(["segment", "synthetic", "--n", "40", "--size", "64", "--outdir", str(prep), "-j", "1"]) == 0
    assert cli.run(["pack", "--data", str(prep), "--outdir", str(root / "db"), "--size", "32", "-j", "1"]) == 0
    return root


def train(*args):
    return cli.run(["train", *[str(a) for a in args]])


@pytest.mark.slow
def test_train_compile_resumes_and_matches_an_eager_run(data, tmp_path, monkeypatch):
    """Compiled main passes (eager backend) with eager R1 and path length: the same metrics and weights
    as an uncompiled run, step for step across a resume, and the same checkpoint contents."""
    monkeypatch.setenv(compiler.BACKEND_ENV, "eager")
    common = [
        "--data",
        data / "db",
        *TINY,
        "--log-every",
        "1",
        "--viz-every",
        "0",
        "--save-every",
        "0",
        "--deterministic",
        "--d-reg-every",
        "3",
        "--g-reg-every",
        "2",
        "--mixing",
        "0.5",
    ]
    assert train(*common, "--outdir", tmp_path / "eager", "--iters", "6") == 0
    assert train(*common, "--outdir", tmp_path / "compiled", "--iters", "3", "--compile") == 0
    assert train("--outdir", tmp_path / "compiled", "--resume", "--iters", "6") == 0
    config = json.loads((tmp_path / "compiled" / "config.json").read_text())
    assert config["train"]["compile"] is True  # recorded, and kept by --resume
    timing = {"sec_per_step", "img_per_s"}
    eager, compiled = (read_metrics(tmp_path / name / "metrics.jsonl") for name in ("eager", "compiled"))
    assert [r["step"] for r in compiled] == list(range(1, 7)) and "r1_img" in compiled[0] and "path" in compiled[0]
    for a, b in zip(eager, compiled):
        a, b = ({k: v for k, v in r.items() if k not in timing} for r in (a, b))
        assert a.keys() == b.keys()
        assert all(b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6) for k in a), (a, b)
    a, b = (load_checkpoint(tmp_path / name / "checkpoints" / "0000006.pt") for name in ("eager", "compiled"))
    assert a.keys() == b.keys() and a["config"]["train"]["compile"] is False
    for part in ("g", "d", "g_ema"):
        assert a[part].keys() == b[part].keys()  # no torch.compile "_orig_mod." prefixes
        torch.testing.assert_close(b[part], a[part])


def test_a_misspelt_backend_is_a_one_line_error(data, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv(compiler.BACKEND_ENV, "inductr")
    code, _, err = run_cli(
        "train", "--data", data / "db", "--outdir", tmp_path / "run", *TINY, "--iters", "1", "--compile"
    )
    assert code == 2 and "GCGAN_COMPILE_BACKEND='inductr'" in err and "Traceback" not in err, err


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "sample"])
def test_help_says_compile_is_for_gpus_and_slow_at_first(command):
    result = subprocess.run(
        [sys.executable, "-m", "gcgan_cli", command, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
        cwd=ROOT,
    )
    text = " ".join(result.stdout.replace("│", " ").split())
    assert result.returncode == 0 and "--compile" in text, result.stderr
    help_text = text[text.index("--compile") :][:600]
    assert "For GPUs" in help_text and "slow" in help_text and "GCGAN_COMPILE_BACKEND" in help_text, help_text


@pytest.mark.slow
def test_sample_compile_writes_the_eager_images(data, tmp_path, run_cli, monkeypatch):
    assert train("--data", data / "db", "--outdir", tmp_path / "run", *TINY, "--iters", "2", "--viz-every", "0") == 0
    ckpt = tmp_path / "run" / "checkpoints" / "0000002.pt"
    monkeypatch.setenv(compiler.BACKEND_ENV, "aot_eager")
    outs = {}
    for name, flags in (("eager", []), ("compiled", ["--compile"])):
        outs[name] = tmp_path / name
        code, out, err = run_cli(
            "sample", "--network", ckpt, "--outdir", outs[name], "--n", "5", "--batch", "2", "--device", "cpu", *flags
        )
        assert code == 0, err
    assert "compiled" in out
    rows = [json.loads(line) for line in (outs["eager"] / "samples.jsonl").read_text().splitlines()]
    for row in rows:  # 5 at batch 2: the last batch of 1 is another graph
        for key in ("image", "mask"):
            assert (outs["compiled"] / row[key]).read_bytes() == (outs["eager"] / row[key]).read_bytes(), row[key]


@pytest.mark.slow
def test_ddp_train_compile_on_two_gloo_processes(data, tmp_path):
    """torch.compile over the DDP modules (DDP's graph splitting at its buckets): the weights of an
    uncompiled DDP run."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", compiler.BACKEND_ENV: "eager"}
    for name, flags in (("eager", []), ("compiled", ["--compile"])):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "gcgan_cli",
                "train",
                "--nproc",
                "2",
                "--data",
                str(data / "db"),
                "--outdir",
                str(tmp_path / name),
                *TINY,
                "--iters",
                "4",
                "--viz-every",
                "0",
                "--quiet",
                *flags,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    a, b = (load_checkpoint(tmp_path / name / "checkpoints" / "0000004.pt") for name in ("eager", "compiled"))
    for part in ("g", "d"):
        torch.testing.assert_close(b[part], a[part])


# --- benchmarks/gpu_check.sh and benchmarks/bf16_check.py ---


def test_gpu_check_dry_run_prints_every_step_with_a_timeout(tmp_path):
    script = ROOT / "benchmarks" / "gpu_check.sh"
    result = subprocess.run(
        ["bash", str(script), "--dry-run", "--baseline", "abc123"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    commands = [line for line in lines if line.startswith("+ ")]
    assert all(" timeout " in f" {line} " for line in commands), commands
    text = "\n".join(commands)
    for expected in (
        "nvidia-smi",
        "gcgan_cli doctor",
        "-m cuda tests/",
        "benchmarks/train.py --device cuda --configs ref256 --batch 4 --baseline abc123",
        "--compile",
        "benchmarks/sample.py --device cuda --configs ref256",
    ):
        assert expected in text, expected
    assert not [line for line in lines if line.startswith("--- ") or line.startswith("skipped")]  # nothing ran


@pytest.mark.slow
def test_bf16_check_runs_on_the_cpu_and_gives_a_verdict():
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bf16_check.py"),
            "--device",
            "cpu",
            "--config",
            "tiny64",
            "--steps",
            "2",
            "--window",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "fp32 seed 1" in result.stdout and "\nverdict: bf16 " in result.stdout, result.stdout


# --- GPU ---


@pytest.mark.cuda
def test_tiny_g_and_d_compile_through_the_kernels_on_cuda(monkeypatch):
    """inductor on the GPU with the CUDA kernels as gcgan:: operators: whole graphs, the eager outputs."""
    monkeypatch.setenv("GCGAN_CUDA_OPS", "force")
    g, d, z, gaze = tiny_networks()
    g, d, z, gaze = g.cuda(), d.cuda(), z.cuda(), gaze.cuda()
    g_c = torch.compile(g, fullgraph=True)
    d_c = torch.compile(d, fullgraph=True)
    with torch.no_grad():
        eager, compiled = g(z, gaze, randomize_noise=False), g_c(z, gaze, randomize_noise=False)
    torch.testing.assert_close(compiled.image, eager.image, rtol=1e-4, atol=1e-4)
    grads = []
    for net in (d, d_c):
        d.zero_grad(set_to_none=True)
        net(eager.image, eager.seg, gaze).square().sum().backward()
        grads.append({name: p.grad.clone() for name, p in d.named_parameters()})
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-4)
