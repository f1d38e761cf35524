"""Can the GPU benchmark run here? What the device has, and one line saying why not when it cannot.

The device machine of this project has PyTorch with CUDA, no TensorRT and no network: the
benchmark runs from the repository checkout alone. Before anything is timed, `check`:

1. imports networkx (fxrep's one dependency besides torch) and fxrep itself, ``fxrep.passes``
   included, and makes sure both come from THIS checkout (a stale install elsewhere would measure
   other code). ``fxrep.passes`` lives in ``passes/`` and is mapped by pyproject.toml's
   ``package-dir``, so a plain ``PYTHONPATH=.`` does not make it importable: ``run.sh`` first
   installs the checkout offline (``pip install -e . --no-deps --no-build-isolation --no-index``,
   which also registers the "fxrep" ``torch.compile`` backend); where that fails (no network for
   build dependencies, a setuptools too old for pyproject's license field, ...), `use_checkout`
   imports fxrep from the checkout directly, applying pyproject's ``package-dir`` mapping itself,
   and the compile section passes the backend function instead of its registered name;
2. requires CUDA, unless this is a dry run on the CPU;
3. optimizes a small RepVGG block on the device with `fxrep.optimize` (verification on) and checks
   that it became one conv, i.e. that fxrep works with this torch on this device.

Each failure raises `CannotRun` with a one-line reason; ``python preflight.py --import-only``
(used by ``run.sh``) exits 1 with that line when fxrep is not importable from here as installed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import pathlib
import platform
import shutil
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


class CannotRun(RuntimeError):
    """The benchmark cannot run on this machine; the message says why in one line."""


def check_networkx() -> None:
    """networkx, fxrep's one dependency besides torch, imports."""
    try:
        importlib.import_module("networkx")
    except ImportError as error:
        raise CannotRun(f"networkx (needed by fxrep) is not installed here ({error}); carry its wheel, see "
                        "benchmarks/gpu/README.md") from error


def check_imports(repo_root: pathlib.Path = REPO_ROOT) -> None:
    """networkx, fxrep and fxrep.passes import, and fxrep comes from ``repo_root``."""
    check_networkx()
    for name in ("fxrep", "fxrep.passes"):
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            raise CannotRun(f"{name} is not importable ({type(error).__name__}: {error}); install the checkout "
                            "with: pip install -e . --no-deps --no-build-isolation --no-index") from error
        location = pathlib.Path(module.__file__ or "").resolve()
        if not location.is_relative_to(repo_root.resolve()):
            raise CannotRun(f"{name} is imported from {location}, not from this checkout ({repo_root}); "
                            "install the checkout with: pip install -e . --no-deps --no-build-isolation --no-index")


class _PackageDirFinder(importlib.abc.MetaPathFinder):
    """Finds the packages pyproject.toml maps to other folders (``fxrep.passes`` -> ``passes/``)."""

    def __init__(self, folders: dict[str, pathlib.Path]) -> None:
        self.folders = folders

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        folder = self.folders.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(fullname, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])


def use_checkout(repo_root: pathlib.Path = REPO_ROOT) -> None:
    """Import fxrep from ``repo_root`` without installing it: its root first on sys.path, pyproject's package-dir.

    Raises `CannotRun` when pyproject.toml cannot be read (tomllib needs Python 3.11).
    """
    try:
        import tomllib
    except ImportError as error:
        raise CannotRun("fxrep is not installed and reading pyproject.toml needs Python >= 3.11") from error
    with (repo_root / "pyproject.toml").open("rb") as handle:
        mapping = tomllib.load(handle).get("tool", {}).get("setuptools", {}).get("package-dir", {})
    base = repo_root / mapping.get("", ".")
    folders = {name: repo_root / folder for name, folder in mapping.items() if name}
    for name in [n for n in sys.modules if n == "fxrep" or n.startswith("fxrep.")]:
        del sys.modules[name]  # a failed import of another copy must not linger
    sys.path.insert(0, str(base.resolve()))
    sys.meta_path.insert(0, _PackageDirFinder(folders))
    importlib.invalidate_caches()


def import_fxrep(repo_root: pathlib.Path = REPO_ROOT) -> str:
    """Make fxrep importable from ``repo_root`` (installed, or else `use_checkout`); returns how."""
    check_networkx()
    try:
        check_imports(repo_root)
        return "installed (editable) from this checkout"
    except CannotRun as installed:
        use_checkout(repo_root)
        try:
            check_imports(repo_root)
        except CannotRun as error:
            raise CannotRun(f"{installed}; importing it from the checkout failed too: {error}") from error
        return "from the checkout by pyproject.toml's package-dir (not installed)"


def device_info(device: str) -> dict[str, str]:
    """Python, torch, CUDA, cuDNN and GPU facts for the results (nothing here fails)."""
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch built with CUDA": str(torch.version.cuda),
        "CUDA available": str(torch.cuda.is_available()),
        "device measured": device,
    }
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update({
            "GPU": torch.cuda.get_device_name(0),
            "GPU memory": f"{props.total_memory / 2**30:.0f} GiB",
            "multiprocessors": str(props.multi_processor_count),
            "compute capability": f"{props.major}.{props.minor}",
            "cuDNN": str(torch.backends.cudnn.version()),
            "cudnn.allow_tf32 (fp32 convs as TF32)": str(torch.backends.cudnn.allow_tf32),
            "cuda.matmul.allow_tf32": str(torch.backends.cuda.matmul.allow_tf32),
        })
        driver = _nvidia_smi_driver()
        if driver:
            info["driver"] = driver
    return info


def _nvidia_smi_driver() -> str:
    if shutil.which("nvidia-smi") is None:
        return ""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""


def check(device: str, dry_run: bool, repo_root: pathlib.Path = REPO_ROOT) -> dict[str, str]:
    """Everything the benchmark needs, checked in order; returns `device_info`. Raises `CannotRun`."""
    how = import_fxrep(repo_root)
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise CannotRun(f"CUDA is not available (torch {torch.__version__}, {built}); GPU figures need an NVIDIA "
                        "GPU (use --dry-run to exercise the script on the CPU)")
    if device not in ("cuda", "cpu") or (device == "cpu" and not dry_run):
        raise CannotRun(f"device {device!r}: only 'cuda' is measured ('cpu' only with --dry-run)")
    _check_fxrep_runs(device)
    return {**device_info(device), "fxrep imported": how}


def _check_fxrep_runs(device: str) -> None:
    """fxrep.optimize turns a randomized RepVGG block on ``device`` into one verified conv."""
    import torch
    from networks import exact_convs

    import fxrep
    from fxrep.models import RepVGGBlock, randomize_
    from fxrep.report import count_ops

    try:
        block = randomize_(RepVGGBlock(8, 8), seed=0).eval().to(device)
        x = torch.randn(1, 8, 16, 16, device=device)
        with exact_convs():  # float32 verification without TF32 (see networks.py)
            optimized = fxrep.optimize(block, (x,))
        convs = count_ops(optimized).get("conv", 0)
    except Exception as error:  # any failure means fxrep cannot run here: say which, in one line
        raise CannotRun(f"fxrep.optimize failed on {device} with torch {torch.__version__}: "
                        f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from error
    if convs != 1:
        raise CannotRun(f"fxrep.optimize left {convs} convs in a RepVGG block on {device} (expected 1)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--import-only", action="store_true", help="only check that fxrep imports from here")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    try:
        if args.import_only:
            check_imports()
        else:
            for key, value in check(args.device, args.dry_run).items():
                print(f"{key}: {value}")
    except CannotRun as error:
        print(f"gpu_bench: cannot run: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
