"""The ``fxrep`` command line: ``fxrep demo`` and ``fxrep optimize MODULE:FACTORY --input 1x3x224x224 ...``.

``fxrep optimize`` builds the training-form model by calling a factory from the user's code,
optionally loads a checkpoint into it, runs `fxrep.optimize`, prints the report, and writes what
was asked for: the report as JSON, the optimized module (a ``torch.export`` program), ONNX, a
TensorRT engine, pictures. Exit codes: 0 success, 1 fxrep or lowering failed (the message says
why), 2 the command line, the factory, the checkpoint or an optional dependency is the problem.
Pictures are the exception: whatever stops them (matplotlib missing, a drawing error) is a warning,
and the run goes on with its other outputs.

Everything heavy (torch, the compiler, the lowering packages) is imported inside the commands, so
parsing arguments and ``--help`` stay cheap.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["UsageError", "build_parser", "load_factory", "load_weights", "main", "parse_shape", "split_factory"]

DTYPES = ("float32", "float16", "bfloat16")
PRECISIONS = ("fp32", "fp16", "bf16")
RUNTIMES = ("auto", "tensorrt", "tensorrt_rtx")


class UsageError(Exception):
    """The command line, the user's factory or checkpoint, or a missing optional package is the problem (exit 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fxrep`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and argparse's own usage errors
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from fxrep.errors import FxrepError
    from fxrep.lower.errors import LoweringError

    try:
        return args.run(args)
    except UsageError as error:
        print(f"fxrep {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (FxrepError, LoweringError) as error:
        print(f"fxrep {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fxrep`` command (subcommands ``demo`` and ``optimize``)."""
    parser = argparse.ArgumentParser(
        prog="fxrep",
        description="Collapse over-parameterized training-time blocks (RepVGG, ACNet, DBB, ...) into plain convs.",
    )
    parser.add_argument("--version", action="version", version=f"fxrep {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="optimize RepVGG-A0, time it against the official conversion, write ONNX/engine/pictures",
        description="Optimize the built-in RepVGG-A0 (seeded random weights), print the report and a CPU latency "
                    "table (training form, fxrep, official deploy conversion), and write the deploy module, "
                    "report, pictures, ONNX and a TensorRT engine (optional steps are skipped with a reason).")
    demo.add_argument("--output", default="fxrep-demo", metavar="DIR", help="where to write files (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="64x64 input and fewer timing runs (seconds, for tests)")
    demo.add_argument("--size", type=int, default=None, metavar="N", help="input height and width (default 224, 64 with --quick)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the random weights and input (default: %(default)s)")
    demo.add_argument("--threads", type=int, default=None, metavar="N",
                      help="torch intra-op threads for the timings (default: torch's own setting)")
    demo.set_defaults(run=_run_demo)

    optimize = commands.add_parser(
        "optimize", help="optimize a model built by MODULE:FACTORY and lower it",
        description="Build a training-form model by calling FACTORY() from MODULE (a dotted module name or a path "
                    "to a .py file), optimize it with fxrep on random inputs of the given shapes, print the report "
                    "and write the requested files.")
    optimize.add_argument("factory", metavar="MODULE:FACTORY", help="e.g. mypkg.models:build or ./net.py:make_net")
    optimize.add_argument("--input", action="append", required=True, metavar="SHAPE", dest="inputs",
                          help="shape of one forward argument, e.g. 1x3x224x224 (repeat for several arguments)")
    optimize.add_argument("--dtype", choices=DTYPES, default="float32", help="model and input dtype (default: %(default)s)")
    optimize.add_argument("--weights", metavar="CKPT", help="checkpoint to load (a state_dict, or {'state_dict': ...} / {'model': ...})")
    optimize.add_argument("--onnx", metavar="PATH", help="export the optimized model to ONNX (checked with onnxruntime)")
    optimize.add_argument("--engine", metavar="PATH", help="build and save a TensorRT engine (+ PATH.json metadata)")
    optimize.add_argument("--precision", choices=PRECISIONS, default="fp32", help="engine precision (default: %(default)s)")
    optimize.add_argument("--runtime", choices=RUNTIMES, default="auto", help="TensorRT flavour (default: %(default)s)")
    optimize.add_argument("--report", metavar="PATH", help="write the report as JSON")
    optimize.add_argument("--save", metavar="PATH", help="save the optimized module as a torch.export program "
                                                         "(load with torch.export.load(PATH).module())")
    optimize.add_argument("--pictures", metavar="DIR",
                          help="draw the graph before and after into DIR (large graphs: an overview grouped by "
                               "module and one picture per part); a drawing problem only warns")
    batch = optimize.add_mutually_exclusive_group()
    batch.add_argument("--static-batch", dest="batch", action="store_const", const="static",
                       help="capture the input shapes as given (default: a dynamic batch when the model allows it, "
                            "then save, ONNX and engine (batch 1..max(32, N)) take any batch size)")
    batch.add_argument("--dynamic-batch", dest="batch", action="store_const", const="dynamic",
                       help="insist on a dynamic batch: an error if the model specializes on the batch size")
    optimize.add_argument("--no-verify", dest="verify", action="store_false", help="skip the numerical check")
    optimize.add_argument("--measure-cost", action="store_true",
                          help="decide by timing each candidate op on this machine instead of the analytic cost model")
    optimize.add_argument("--timing-cache", metavar="PATH",
                          help="with --measure-cost: JSON timing cache to reuse and extend (created if missing)")
    optimize.set_defaults(run=_run_optimize)
    return parser


# ---------------------------------------------------------------------------------------------- demo
def _run_demo(args: argparse.Namespace) -> int:
    from fxrep.demo import run_demo

    size = args.size if args.size is not None else (64 if args.quick else 224)
    if size < 32:
        raise UsageError(f"--size {size} is too small: RepVGG-A0 downsamples 32x (use 32 or more)")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads {args.threads}: give a positive number of threads")
    run_demo(args.output, size=size, seed=args.seed, quick=args.quick, threads=args.threads)
    return 0


# ---------------------------------------------------------------------------------------------- optimize
def _run_optimize(args: argparse.Namespace) -> int:
    shapes = [parse_shape(text) for text in args.inputs]
    split_factory(args.factory)
    _check_optional_dependencies(args)
    timing_cache = _timing_cache(args)
    import torch

    from fxrep import demo
    from fxrep.optimization import batch_is_dynamic, optimize
    from fxrep.progress import step

    dtype = getattr(torch, args.dtype)
    with step(f"building the model ({args.factory})"):
        model = load_factory(args.factory)
        if args.weights:
            load_weights(model, args.weights)
        model = model.to(dtype).eval()
    generator = torch.Generator().manual_seed(0)
    inputs = tuple(torch.randn(shape, generator=generator).to(dtype) for shape in shapes)

    cost = {"cost": "measure", "timing_cache": timing_cache} if args.measure_cost else {}
    dynamic_batch = {"static": False, "dynamic": True}.get(args.batch)
    optimized = optimize(model, inputs, verify=args.verify, dynamic_batch=dynamic_batch, progress=True, **cost)
    dynamic = args.batch == "dynamic" or batch_is_dynamic(optimized)
    print(optimized.fxrep_report)
    print()
    if args.report:
        _write_report(optimized.fxrep_report, Path(args.report))
        print(f"wrote the report: {args.report}")
    if args.save:
        with step("saving the optimized module (torch.export)"):
            demo.save_optimized(optimized, inputs, args.save, dynamic_batch=dynamic)
        print(f"wrote the optimized module: {args.save} (load with torch.export.load(path).module())")
    if args.pictures:
        _write_pictures(model, inputs, optimized, args.pictures)
    if args.onnx:
        check = demo.export_checked_onnx(optimized, inputs, args.onnx, dynamic_batch=dynamic)
        print(f"wrote ONNX: {args.onnx} ({check})")
    if args.engine:
        batch = shapes[0][0] if shapes[0] else 1
        batch_range = (1, batch, max(32, batch)) if dynamic else None
        from fxrep.lower.tensorrt_runtime import PRECISIONS as PRECISION_DTYPES

        same_dtype = PRECISION_DTYPES[args.precision] == dtype
        source = Path(args.onnx) if args.onnx and same_dtype else optimized
        engine = demo.build_saved_engine(source, inputs, args.engine, runtime=args.runtime,
                                         precision=args.precision, dynamic_batch=batch_range)
        print(f"wrote a {engine.runtime} engine: {args.engine} ({args.precision}; network layers: "
              f"{demo.format_layers(engine.layer_summary())})")
    return 0


def _write_pictures(model: Any, inputs: tuple[Any, ...], optimized: Any, directory: str) -> None:
    """Draw the pictures, or warn why not: a picture problem never fails the run (its other outputs count)."""
    from fxrep import demo
    from fxrep.progress import step

    reason = demo.pictures_unavailable()
    if reason is None:
        try:
            with step("drawing the graph before and after"):
                pictures = demo.draw_pictures(model, inputs, optimized, directory)
            print(f"wrote pictures in {directory}: {demo.describe_pictures(pictures)}")
            return
        except Exception as error:  # whatever went wrong while drawing, the optimized model and files stand
            reason = f"{type(error).__name__}: {error}"
    print(f"fxrep optimize: warning: no pictures drawn ({reason}); the other outputs are unaffected", file=sys.stderr)


def _timing_cache(args: argparse.Namespace) -> Path | None:
    """``--timing-cache``, checked before the model is built (a bad file is a usage error)."""
    if args.timing_cache is None:
        return None
    if not args.measure_cost:
        raise UsageError("--timing-cache only goes with --measure-cost (the analytic cost model times nothing)")
    from fxrep.cost import TimingCache, TimingCacheError

    try:
        TimingCache.load(args.timing_cache)
    except TimingCacheError as error:
        raise UsageError(str(error)) from error
    return Path(args.timing_cache)


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1x3x224x224"`` -> ``(1, 3, 224, 224)``; UsageError for anything else."""
    parts = text.lower().replace("×", "x").split("x")
    if not text.strip() or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise UsageError(f"--input {text!r} is not a shape: write positive sizes separated by 'x', "
                         "e.g. --input 1x3x224x224")
    return tuple(int(part) for part in parts)


def load_factory(spec: str) -> Any:
    """Import MODULE (dotted name or .py path) from ``"MODULE:FACTORY"``, call FACTORY(), return the nn.Module."""
    from torch import nn

    module_name, factory_name = split_factory(spec)
    module = _import_module(module_name)
    factory = getattr(module, factory_name, None)
    if factory is None:
        callables = sorted(name for name, value in vars(module).items() if callable(value) and not name.startswith("_")
                           and getattr(value, "__module__", None) == module.__name__)
        shown = ", ".join(callables[:15]) + (" ..." if len(callables) > 15 else "")
        raise UsageError(f"module {module_name!r} has no attribute {factory_name!r}; its callables: {shown or 'none'}")
    if not callable(factory):
        raise UsageError(f"{spec}: {factory_name} is a {type(factory).__name__}, not a callable that builds the model")
    try:
        model = factory()
    except Exception as error:
        raise UsageError(f"{spec}() raised {type(error).__name__}: {error}. FACTORY must build the model "
                         "without arguments; wrap it, e.g. def build(): return MyNet(num_classes=10)") from error
    if not isinstance(model, nn.Module):
        raise UsageError(f"{spec}() returned {type(model).__name__} ({_short_repr(model)}), not a torch.nn.Module: "
                         "the factory must return the training-form model")
    return model


def split_factory(spec: str) -> tuple[str, str]:
    """``"pkg.mod:build"`` -> ``("pkg.mod", "build")``; UsageError when it is not MODULE:FACTORY."""
    module_name, sep, factory_name = spec.rpartition(":")
    if not sep or not module_name or not factory_name.isidentifier():
        raise UsageError(f"{spec!r} is not MODULE:FACTORY: write e.g. mypkg.models:build_model or ./net.py:build_model "
                         "(FACTORY is called without arguments and returns the training-form nn.Module)")
    return module_name, factory_name


def load_weights(model: Any, path: str | Path) -> None:
    """Load a checkpoint into ``model`` strictly; UsageError naming missing and unexpected keys otherwise."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--weights {path}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UsageError(f"--weights {path}: torch.load(weights_only=True) failed ({type(error).__name__}: {first}). "
                         "Re-save the weights alone: torch.save(model.state_dict(), path)") from error
    state = _state_dict_of(checkpoint, path)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches raise even with strict=False
        details = [line.strip() for line in str(error).splitlines()[1:] if line.strip()] or [str(error)]
        raise UsageError(f"--weights {path} does not fit the model: {'; '.join(details)}") from error
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"missing keys (in the model, not in the checkpoint): {_listing(result.missing_keys)}")
        if result.unexpected_keys:
            parts.append(f"unexpected keys (in the checkpoint, not in the model): {_listing(result.unexpected_keys)}")
        raise UsageError(f"--weights {path} does not match the model; " + "; ".join(parts) + ". Check that the "
                         "factory builds the architecture the checkpoint was trained with (variant, num_classes) "
                         "in training form, not an already converted deploy form.")


def _state_dict_of(checkpoint: Any, path: Path) -> Mapping[str, Any]:
    import torch

    for key in ("state_dict", "model"):
        if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, Mapping) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise UsageError(f"--weights {path}: expected a state_dict (names -> tensors), or a dict with one under "
                         f"'state_dict' or 'model'; got a {type(checkpoint).__name__}")
    if checkpoint and all(key.startswith("module.") for key in checkpoint):  # saved from DataParallel/DDP
        checkpoint = {key[len("module."):]: value for key, value in checkpoint.items()}
    return checkpoint


def _short_repr(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _listing(keys: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _import_module(name: str) -> Any:
    looks_like_path = name.endswith(".py") or "/" in name or "\\" in name
    if looks_like_path:
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"{name}: no such file (MODULE is a dotted module name or a path to a .py file)")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))  # let the file import its neighbours
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            raise UsageError(f"running {name} failed: {type(error).__name__}: {error}") from error
        finally:
            sys.path.remove(str(path.resolve().parent))
        return module
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # console scripts do not put the working directory on sys.path
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        raise UsageError(f"cannot import {name!r} ({error}); run fxrep from the directory that contains it, "
                         "install its package, or pass a path to the .py file") from error
    except Exception as error:
        raise UsageError(f"importing {name!r} failed: {type(error).__name__}: {error}") from error


def _check_optional_dependencies(args: argparse.Namespace) -> None:
    """Fail before the (slow) optimization when an output was asked for that cannot be produced here."""
    from fxrep import demo

    if args.onnx and (reason := demo.onnx_unavailable()):
        raise UsageError(f"--onnx needs {reason}")
    if args.engine and (reason := demo.engine_unavailable(args.runtime)):
        raise UsageError(f"--engine: {reason}")


def _write_report(report: Any, path: Path) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fxrep")
    except PackageNotFoundError:
        return "unknown (not installed)"


if __name__ == "__main__":
    sys.exit(main())
