"""Writing one GPU benchmark run: the markdown report, the CSVs, the constants fit, and the printed summary.

Every file goes to one folder (``$OUT`` on the device machine, which returns at most 8 files):
``gpu_bench{suffix}.md`` holds every table; ``gpu_models``, ``gpu_compile`` and ``gpu_ops`` CSVs
hold the raw medians, quartiles, CIs and round counts; ``gpu_fit{suffix}.md`` / ``.csv`` the fitted
constants (`fit_constants`). A run is *complete* when no section crashed, no configuration failed
and none was skipped for time.
"""

from __future__ import annotations

import pathlib
import traceback
from collections.abc import Mapping

import compile_bench
import fit_constants
import models_bench
import ops_bench
from _timing import md_info, md_table, write_csv, write_text
from plan import Plan


def write_results(plan: Plan, info: dict[str, str], results: Mapping[str, object], crashed: list[str],
                  out: pathlib.Path, clock: str) -> bool:
    """Write every file of the run under ``out`` and print the summary; True when the run is complete."""
    suffix = plan.suffix
    problems: list[str] = [f"section crashed: {line}" for line in crashed]
    sections: list[str] = [f"# fxrep on the GPU ({plan.mode} run)"]
    if plan.mode == "dry-run":
        sections.append("**DRY RUN on the CPU, tiny sizes, host wall clock: these numbers test the script; they "
                        "are not GPU figures.**")
    sections.append(md_info(info))
    summary: list[str] = []

    models = results.get("models")
    if isinstance(models, models_bench.SectionResult):
        header, rows = models_bench.table_rows(models)
        table = md_table(header, rows)
        summary.append(table)
        s_header, s_rows = models_bench.structure_rows(models)
        sections.append(f"## Eager: training form vs fxrep.optimize vs hand conversion ({plan.size}x{plan.size}, "
                        f"channels_last, {clock} clock, median per forward)\n\n" + table
                        + "\n\nPaired per-round ratios; the A/A control is a copy of the hand conversion timed as "
                          "another variant (the method's noise floor).\n\n" + md_table(s_header, s_rows))
        write_csv(out / f"gpu_models{suffix}.csv", models_bench.CSV_HEADER, models_bench.csv_rows(models, clock))
        problems += _problems("models", models.skipped, models.errors)

    ops = results.get("ops")
    fit_text = ""
    if isinstance(ops, ops_bench.SectionResult):
        ops_csv = out / f"gpu_ops{suffix}.csv"
        write_csv(ops_csv, ops_bench.CSV_HEADER, ops.rows)
        header, rows = ops_bench.category_rows(ops)
        sections.append(f"## Single ops ({plan.op_scale} op set, channels_last, {clock} clock)\n\n"
                        + md_table(header, rows))
        problems += _problems("ops", ops.skipped, ops.errors)
        if ops.rows:
            try:
                fits = fit_constants.fit(ops_csv)
                fit_text = fit_constants.write(fits, ops_csv.name, out / f"gpu_fit{suffix}.md",
                                               out / f"gpu_fit{suffix}.csv")
                problems += [f"fit {f.dtype}: a constant is not finite and positive" for f in fits
                             if not fit_constants.is_usable(f.target)]
            except Exception:  # the raw CSV is written: a fit can be redone with fit_constants.py
                problems.append(f"fit: {traceback.format_exc().strip().splitlines()[-1]}")
                traceback.print_exc()
            sections.append(fit_text)

    compiled = results.get("compile")
    if isinstance(compiled, compile_bench.SectionResult):
        header, rows = compile_bench.table_rows(compiled)
        table = md_table(header, rows)
        summary.append(table)
        backend = compiled.results[0].backend if compiled.results else "-"
        sections.append(f"## torch.compile: backend=fxrep on the training form vs Inductor on the hand conversion "
                        f"(dynamic=False, backend {backend})\n\n" + table)
        write_csv(out / f"gpu_compile{suffix}.csv", compile_bench.CSV_HEADER, compile_bench.csv_rows(compiled, clock))
        problems += _problems("compile", compiled.skipped, compiled.errors)

    sections.append("## Completeness\n\n" + ("\n".join(f"- {p}" for p in problems) if problems else
                                             "Every planned configuration was measured."))
    write_text(out / f"gpu_bench{suffix}.md", "\n\n".join(sections))
    print("\n\n".join(["## summary", *summary, fit_text.split("\n\nFit quality")[0] if fit_text else ""]))
    for problem in problems:
        print(f"INCOMPLETE: {problem}")
    print(f"wrote {out / f'gpu_bench{suffix}.md'} and the CSVs ({'complete' if not problems else 'INCOMPLETE'})")
    return not problems


def _problems(section: str, skipped: list[str], errors: list[str]) -> list[str]:
    return [f"{section}: skipped {item}" for item in skipped] + [f"{section}: failed {item}" for item in errors]
