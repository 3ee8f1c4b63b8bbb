"""One self-contained HTML page (figures inline) and a Markdown summary for one or more runs."""

import base64
import datetime as dt
import html
import json
from pathlib import Path

from lottery import atomic
from lottery.analysis import buys, stability
from lottery.analysis.plots import all_figures
from lottery.analysis.stats import CI_METHOD
from lottery.analysis.summary import results_table
from lottery.analysis.table import histories, table
from lottery.analysis.verdict import verdicts
from lottery.store import RunStore

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
.verdict{background:#f3f7ff;border-left:4px solid #2b6cb0;padding:.8em 1em;white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:.9em}
.rule{color:#555;font-size:.9em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
pre{background:#f8f8f8;padding:.8em;overflow-x:auto;font-size:.85em}
"""


def environment(store: RunStore) -> dict:
    inv = store.invocations()
    done = [i for i in inv if i.get("event") == "finished"] or inv
    last = done[-1] if done else {}
    return {"versions": {k: last.get(k) for k in ("lottery", "torch", "python")}, "device": last.get("device"),
            "threads": last.get("threads"), "platform": last.get("platform"), "seeds": last.get("seeds"),
            "invocations": len([i for i in inv if i.get("event") == "started"]),
            "wall_seconds": round(sum(i.get("seconds", 0) for i in inv if i.get("event") != "started"), 1)}


def _run_section(store: RunStore, fig_dir: Path, delta: float, seeds=None) -> tuple[str, str, list[str]]:
    df = table(store)
    if seeds is not None:
        df = df[df.seed.isin(list(seeds))]
    cfg = store.config()
    name = store.run_dir.name
    if df.empty:
        text = f"## Run {name}\n\nNo finished units yet.\n"
        return f"<h2>Run {html.escape(name)}</h2><p>No finished units yet.</p>", text, []
    vs = verdicts(df, delta=delta)  # on the seeds of `df`, which its lines name
    verdict_lines = [line for v in vs for line in v.lines()]
    hist = histories(store)
    figures = all_figures(df, hist[hist.seed.isin(df.seed.unique())] if len(hist) else hist, fig_dir / name,
                          formats=("png",))
    barrier = stability.figure(df, fig_dir / name, formats=("png",))
    if barrier is not None:
        figures["instability"] = barrier
    tbl = results_table(df)
    env = environment(store)
    bought = buys.lines(buys.measure(store, vs[0]))
    config_json = json.dumps(cfg.hashed_dict(), indent=2, sort_keys=True)
    imgs = "".join(f'<figure><img alt="{k}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
                   f"</figure>" for k, p in figures.items())
    page = (f"<h2>Run {html.escape(name)}</h2>"
            f'<div class="verdict" id="verdict">{html.escape(chr(10).join(verdict_lines))}</div>'
            f'<p class="rule">{html.escape(vs[0].rule)} Intervals: {CI_METHOD} (* where cut).</p>'
            f"<h3>Figures</h3>{imgs}"
            f'<h3>What the ticket buys</h3><div class="verdict" id="buys">{html.escape(chr(10).join(bought))}</div>'
            f"<h3>Results (mean [95% CI] over seeds)</h3>{tbl.to_html(index=False, table_id='results', escape=True)}"
            f"<h3>Configuration (hash {html.escape(cfg.hash())})</h3><pre>{html.escape(config_json)}</pre>"
            f"<h3>Environment</h3><pre>{html.escape(json.dumps(env, indent=2))}</pre>")
    md = "\n".join([f"## Run {name}", "", "```", *verdict_lines, "```", "", vs[0].rule, "",
                    *[f"![{k}](figures/{name}/{p.name})" for k, p in figures.items()], "",
                    "### What the ticket buys", "", "```", *bought, "```", "",
                    tbl.to_markdown(index=False),
                    "", f"Configuration hash `{cfg.hash()}`; environment: `{json.dumps(env)}`", ""])
    return page, md, verdict_lines


def _rewinding_section(stores: list[RunStore], fig_dir: Path, seeds) -> tuple[str, str, list[str]]:
    """Stability across runs that differ in their rewind step: the barrier against k, and from which k
    each level is stable."""
    tables = [table(s) for s in stores]
    by_k = stability.across_rewinds([t[t.seed.isin(list(seeds))] if seeds is not None else t for t in tables])
    if by_k.empty or by_k.rewind_step.nunique() < 2:
        return "", "", []
    lines = stability.stable_from(by_k)
    path = stability.rewind_figure(by_k, fig_dir / "rewinding", formats=("png",))
    img = f'<figure><img alt="instability by k" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"></figure>'
    page = (f"<h2>Stability across rewind steps</h2><div class=\"verdict\" id=\"stability\">"
            f"{html.escape(chr(10).join(lines))}</div>{img}")
    md = "\n".join(["## Stability across rewind steps", "", "```", *lines, "```", "",
                     f"![instability by k](figures/rewinding/{path.name})", ""])
    return page, md, lines


def write_report(stores: list[RunStore], out_dir: Path, delta: float = 0.005, seeds=None) -> tuple[Path, Path]:
    """DIR/report.html (self-contained) and DIR/report.md (figures beside it), on `seeds` (None:
    every seed each run holds)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = [_run_section(s, out_dir / "figures", delta, seeds) for s in stores]
    if len(stores) > 1:
        sections.append(_rewinding_section(stores, out_dir / "figures", seeds))
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>lottery report</title><style>{CSS}</style>"
            f"</head><body><h1>Lottery-ticket report</h1><p>Generated {stamp} for {len(stores)} run(s).</p>"
            + "".join(s[0] for s in sections) + "</body></html>")
    atomic.write_bytes(out_dir / "report.html", page.encode())
    atomic.write_bytes(out_dir / "report.md", (f"# Lottery-ticket report\n\nGenerated {stamp}.\n\n"
                                               + "\n".join(s[1] for s in sections)).encode())
    return out_dir / "report.html", out_dir / "report.md"
