"""The table renderer and the claims checker on small fixtures: paper value beside ours, both
protocols under the table (every column in the CSV); each claim's direction on our numbers and on
the published ones."""
import re

import pandas as pd
import pytest

from conftest import ROOT, tiny_run
from ganrepro.report.claims import PROFILE_METRICS, TABLE_COLUMNS, Metrics, check_claims, our_value, paper_tables
from ganrepro.report.render import (DRY_RUN_BANNER, EXPERIMENT_VIEW, PAPER_VIEW, RUNS_VIEW, banner, claims_table,
                                    experiment_page, index_page, load_claims, page_table, paper_page, run_table,
                                    runs_page, runs_table, write_table)

PUBLISHED = {"fid": {"id": "c", "paper": "dcgan-vs-sagan", "table": "Sec. 5", "row": "DCGAN", "run": "dcgan_cifar10",
                     "metric": "fid", "value": 148.72, "protocol": {"backend": "inception", "dims": 2048}}}
EVAL = {
    "fid": {"digit_classifier": {"value": 54.6, "protocol": {"backend": "digit_classifier", "dims": 128,
                                                             "n_real": 5000, "n_fake": 5000}},
            "inception": {"skipped": "weights not found: pt_inception.pth"}},
    "kid": {"digit_classifier": {"value": 0.02, "std": 0.001, "protocol": {"backend": "digit_classifier"}}},
    "lpips_diversity": {"lpips_digit": {"value": 1.05, "protocol": {"backend": "lpips_digit", "n_pairs": 500}}},
}


def test_run_table_puts_the_papers_value_beside_ours_with_both_protocols(tmp_path):
    run = tiny_run(dataset="cifar10", data="mnist5k")
    df = run_table(run, EVAL, PUBLISHED)
    assert list(df.columns) == TABLE_COLUMNS
    fid = df[df.metric == "FID (digit_classifier)"].iloc[0]
    assert fid.paper_value == 148.72 and fid.our_value == 54.6 and fid.profile == "quick"
    assert fid.paper_protocol == "backend=inception, dims=2048"
    assert "backend=digit_classifier" in fid.protocol and "n_fake=5000" in fid.protocol
    assert "not the paper's backend" in fid.protocol and fid.unit == ""
    assert fid.data == "mnist5k (quick stand-in for cifar10)"
    skipped = df[df.metric == "FID (inception)"].iloc[0]
    assert pd.isna(skipped.our_value) and "not found" in skipped.protocol
    assert df[df.metric == "KID (digit_classifier)"].iloc[0].our_value == 0.02
    csv, md = write_table(df, tmp_path / "t", page_table(df, EXPERIMENT_VIEW))
    assert pd.read_csv(csv).shape == df.shape  # every column in the CSV
    assert "148.72" in md.read_text() and "table=Sec. 5" in md.read_text()


def test_no_published_value_leaves_the_paper_columns_empty():
    df = run_table(tiny_run(dataset="mnist", data="mnist5k"), EVAL, {})
    assert df.paper_value.isna().all() and (df.paper == "").all()


def test_the_quick_banner_says_its_numbers_are_not_paper_scale():
    from ganrepro.config import load_params

    params = load_params(ROOT / "params.yaml")
    text = banner(params, tiny_run(dataset="cifar10", data="mnist5k"))
    assert "Quick profile" in text and "not paper-scale results" in text and "`mnist5k` stands in for `cifar10`" in text


def dry_run_params(profile: str = "paper"):
    """The project's params.yaml at `profile`, as the paper dry run overrides it."""
    from ganrepro.config import load_params

    params = load_params(ROOT / "params.yaml")
    dry = params.profiles[profile].model_copy(update={"dry_run": True, "steps": 2, "device": "cpu", "seeds": 1})
    return params.model_copy(update={"profile": profile, "profiles": {**params.profiles, profile: dry}})


def test_every_page_of_a_dry_run_opens_with_the_dry_run_banner():
    params, run = dry_run_params(), tiny_run(profile="paper", dataset="cifar10", data="cifar10")
    claims = {"papers": {"p": {"title": "P", "runs": [], "figures": []}}}
    pages = {
        "paper": paper_page(params, {"title": "P"}, [], "", [], [], run),
        "experiment": experiment_page(params, run, "", {}, {}),
        "index": index_page(params, run, claims, pd.DataFrame()),
        "runs": runs_page(params, [run], ""),
    }
    for name, page in pages.items():
        title, first, *_ = page.split("\n\n")
        assert title.startswith("# ") and DRY_RUN_BANNER in first, name
        assert "Paper profile" not in page, name  # in place of the paper banner
    assert DRY_RUN_BANNER == "paper dry run: shapes and protocols only, no results"
    assert "2 generator steps" in pages["index"]


def test_the_paper_banner_without_a_dry_run_and_both_banners_on_a_quick_dry_run():
    from ganrepro.config import load_params

    params = load_params(ROOT / "params.yaml")
    paper = params.model_copy(update={"profile": "paper"})
    assert "Paper profile" in banner(paper, tiny_run()) and DRY_RUN_BANNER not in banner(paper, tiny_run())
    quick = banner(dry_run_params("quick"), tiny_run(dataset="cifar10", data="mnist5k"))
    assert DRY_RUN_BANNER in quick and "not paper-scale results" in quick


# ---------------------------------------------------------------- claims
def fixture_metrics() -> Metrics:
    hist = pd.DataFrame({"step": range(10, 101, 10), "M_global": [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]})
    return Metrics(
        evaluate={"a": EVAL, "b": {"fid": {"digit_classifier": {"value": 40.0, "protocol": {}}}}},
        profile={"deq": {"peak_memory_mb": 30.0, "seconds_per_epoch": 9.0, "device": "cpu", "model_settings": {"deq_backward": "IFT"}},
                 "wgan": {"peak_memory_mb": 60.0, "seconds_per_epoch": 2.0, "device": "cpu"}},
        history={"began": hist},
        curve={"began": pd.DataFrame({"step": [20, 40, 60, 80, 100], "fid_digit_classifier": [50, 40, 30, 20, 10]})},
    )


CLAIMS = {
    "papers": {"p": {"title": "P", "runs": ["a", "b"], "figures": []}},
    "values": [
        {"id": "fa", "paper": "p", "table": "T1", "row": "A", "metric": "fid", "run": "a", "value": 10.0,
         "protocol": {"backend": "inception"}},
        {"id": "fb", "paper": "p", "table": "T1", "row": "B", "metric": "fid", "run": "b", "value": 20.0},
        {"id": "mem", "paper": "p", "table": "T2", "row": "ratio", "metric": "peak_memory_mb",
         "ratio": ["deq", "wgan"], "value": 0.47},
        {"id": "time", "paper": "p", "table": "T2", "row": "ratio", "metric": "seconds_per_epoch",
         "ratio": ["deq", "wgan"], "value": 4.5},
        {"id": "corr", "paper": "p", "table": "T3", "row": "g", "metric": "mglobal_fid_spearman", "run": "began",
         "value": None},
        {"id": "gone", "paper": "p", "table": "T3", "row": "x", "metric": "fid", "run": "missing", "value": 1.0},
    ],
    "claims": [
        {"id": "a_beats_b", "paper": "p", "claim": "A beats B", "less": [["fa", "fb"]]},
        {"id": "tradeoff", "paper": "p", "claim": "less memory, more time", "less": [["mem", 1], [1, "time"]]},
        {"id": "corr", "paper": "p", "claim": "M_global tracks FID", "less": [[0, "corr"]]},
        {"id": "unknowable", "paper": "p", "claim": "needs a missing run", "less": [["gone", "fa"]]},
    ],
}


def test_our_value_reads_the_right_metric_file_and_computes_ratios():
    m = fixture_metrics()
    assert our_value(CLAIMS["values"][0], m)[0] == 54.6  # the paper's backend is skipped: first with a value
    assert our_value(CLAIMS["values"][2], m) == (0.5, "deq / wgan; device=cpu, deq_backward=IFT")
    assert our_value(CLAIMS["values"][3], m)[0] == 4.5
    value, why = our_value(CLAIMS["values"][5], m)
    assert value is None and "missing" in why


def test_mglobal_correlation_is_the_spearman_rank_of_window_means():
    m = fixture_metrics()
    assert our_value(CLAIMS["values"][4], m)[0] == pytest.approx(1.0)  # both fall together
    m.curve["began"]["fid_digit_classifier"] = [10, 20, 30, 40, 50]  # quality falls while M_global falls
    assert our_value(CLAIMS["values"][4], m)[0] == pytest.approx(-1.0)


def test_claims_are_checked_on_ours_and_on_the_papers_numbers():
    df = check_claims(CLAIMS, fixture_metrics(), "quick").set_index("claim_id")
    ours, theirs = df["direction_reproduced"].to_dict(), df["paper_direction"].to_dict()
    assert ours["a_beats_b"] is False and theirs["a_beats_b"] is True  # 54.6 < 40.0 is false; 10 < 20
    assert df.loc["a_beats_b", "our_numbers"] == "54.6 < 40.0"
    assert ours["tradeoff"] is True and theirs["tradeoff"] is True  # 0.5 < 1 < 4.5
    assert ours["corr"] is True and theirs["corr"] is None  # no published number
    assert ours["unknowable"] is None


def test_a_claim_naming_an_unknown_value_is_an_error():
    bad = {**CLAIMS, "claims": [{"id": "x", "paper": "p", "claim": "c", "less": [["fa", "nope"]]}]}
    with pytest.raises(ValueError, match=r"claim x: unknown value ids \['nope'\]"):
        check_claims(bad, fixture_metrics(), "quick")


def test_paper_tables_group_rows_by_paper_and_table():
    tables = paper_tables(CLAIMS, fixture_metrics(), "quick", {"a": "mnist5k (quick stand-in for cifar10)"})
    assert list(tables) == [("p", "T1"), ("p", "T2"), ("p", "T3")]
    t1 = tables[("p", "T1")]
    assert list(t1.columns) == TABLE_COLUMNS and list(t1.paper_value) == [10.0, 20.0]
    assert t1.iloc[0].data == "mnist5k (quick stand-in for cifar10)"


def test_the_projects_claims_name_real_runs_metrics_and_figures():
    from ganrepro.config import load_params
    from ganrepro.report.figures import FIGURES

    claims, params = load_claims(ROOT / "reports/claims.yaml"), load_params(ROOT / "params.yaml")
    profiled_only = {name for spec in params.runs.values() for name in spec.profile_only}  # profile metrics only
    for v in claims["values"]:
        for run in v.get("ratio") or [v["run"]]:
            assert run in params.runs or (run in profiled_only and v["metric"] in PROFILE_METRICS), \
                f"claims.yaml value {v['id']}: no run {run!r} in params.yaml"
        assert v["paper"] in claims["papers"]
        our_value(v, Metrics())  # raises on an unknown metric
    for name, spec in claims["papers"].items():
        assert set(spec["runs"]) <= set(params.runs) and all(f in FIGURES for f in spec["figures"])
    check_claims(claims, Metrics(), "quick")  # every claim names known values


def test_fid_over_seeds_is_shown_as_mean_and_sample_std():
    from ganrepro.evaluation import spread

    s = spread([10.0, 12.0, 14.0])
    assert s["mean"] == 12.0 and s["std"] == pytest.approx(2.0) and s["n"] == 3  # ddof 1: sqrt(8 / 2)
    assert spread([5.0])["std"] is None
    m = fixture_metrics()
    m.evaluate["a"]["fid_seeds"] = {"digit_classifier": {**s, "protocol": {}}}
    row = paper_tables(CLAIMS, m, "quick", {})[("p", "T1")].iloc[0]
    assert row.our_seeds == "12 ± 2 (3 seeds)"


# ---------------------------------------------------------------- the pages' tables
WIDTH = 160  # characters a Markdown table line may take
NUMBERS = {"paper_value": "paper", "our_value": "ours", "steps": "steps", "final_loss_d": "loss D",
           "final_loss_g": "loss G", "fid": "FID"}  # DataFrame column -> its header on the page
TEXTS = {"paper_protocol", "protocol", "our_seeds", "data", "fid_protocol", "fid_over_seeds", "img_size"}


def table_cells(md: str) -> list[dict[str, str]]:
    """The body rows of the first Markdown table in `md`, as header -> cell text."""
    lines = [line for line in md.splitlines() if line.startswith("|")]
    split = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
    return [dict(zip(split(lines[0]), split(line))) for line in lines[2:]]


def numbers_in(text: str) -> set[str]:
    return set(re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text))


def page_tables() -> list[tuple[pd.DataFrame, object]]:
    """Each kind of table a page shows, from the fixtures, with its view; values need 7+ digits."""
    m = fixture_metrics()
    m.evaluate["b"]["fid"]["digit_classifier"]["value"] = 1348.1973  # a default float format would round it
    fa = {**CLAIMS["values"][0], "protocol": {"backend": "inception", "dims": 2048, "n_fake": 50000}}
    claims = {**CLAIMS, "values": [fa, *CLAIMS["values"][1:]]}
    data = {"a": "mnist5k (quick stand-in for cifar10)"}
    tables = [(df, PAPER_VIEW) for df in paper_tables(claims, m, "quick", data).values()]
    run = tiny_run(name="a", dataset="cifar10", data="mnist5k")
    train = {"a": {"steps": 800, "final_loss_d": 0.6108612, "final_loss_g": -10.157971}}
    return tables + [(run_table(run, EVAL, PUBLISHED), EXPERIMENT_VIEW), (runs_table([run], m, train, {}), RUNS_VIEW)]


def test_every_number_of_a_table_is_on_its_page_unchanged():
    for df, view in page_tables():
        md = page_table(df, view)
        cells = table_cells(md)
        assert len(cells) == len(df), md
        for column in set(NUMBERS) & set(df):  # exactly the CSV's number, in its column; "—" for none
            shown = [c.get(NUMBERS[column], "—") for c in cells]
            for value, text in zip(df[column], shown):
                same = text == "—" if pd.isna(value) else text != "—" and float(text) == value
                assert same, f"{column}: {value} shown as {text!r}\n{md}"
        on_page = numbers_in(md)
        for column in TEXTS & set(df):  # in the table or in the notes under it
            for text in df[column].dropna().astype(str):
                missing = numbers_in(text) - on_page
                assert not missing, f"{column}: {sorted(missing)} of {text!r} are not on the page\n{md}"


def test_long_protocols_stay_under_the_table_once_and_its_lines_stay_narrow():
    df = paper_tables(CLAIMS, fixture_metrics(), "quick", {})[("p", "T1")]
    shared = ", ".join(f"key{i}=a long protocol value {i}" for i in range(12))  # ~330 characters
    df["protocol"] = [f"{shared}, only_a=1", f"{shared}, only_b=2"]
    df["paper_protocol"] = ["method=as published, batch=1", "method=as published"]
    md = page_table(df, PAPER_VIEW)
    assert max(len(line) for line in md.splitlines() if line.startswith("|")) <= WIDTH, md
    flat = " ".join(md.split())  # the notes wrap
    assert flat.count("key11=a long protocol value 11") == 1 and flat.count("method=as published") == 1
    assert [c["notes"] for c in table_cells(md)] == ["1", "2"]
    assert "(1) paper: batch=1; ours: only_a=1" in flat and "(2) ours: only_b=2" in flat


def test_identical_rows_need_no_notes_and_the_csv_keeps_every_column(tmp_path):
    df = paper_tables(CLAIMS, fixture_metrics(), "quick", {})[("p", "T2")]  # the two ratios, measured alike
    md = page_table(df, PAPER_VIEW)
    assert "notes" not in table_cells(md)[0] and "- all rows: " in md
    assert {c["unit"] for c in table_cells(md)} == {"ratio"}
    csv, _ = write_table(df, tmp_path / "t", md)
    assert list(pd.read_csv(csv).columns) == TABLE_COLUMNS


def test_the_claims_table_puts_each_tested_pair_on_a_narrow_line():
    verdicts = check_claims(CLAIMS, fixture_metrics(), "quick")
    md = claims_table(verdicts).replace("\u00a0", " ")  # "a < b" is kept on one line with no-break spaces
    assert max(len(line) for line in md.splitlines() if line.startswith("|")) <= WIDTH, md
    cells = table_cells(md)
    assert [c["test"] for c in cells][1:3] == ["mem < 1", "1 < time"]
    assert cells[1]["holds (ours)"] == "yes" and cells[2]["holds (ours)"] == ""  # once per claim
    for text in [*verdicts.paper_numbers, *verdicts.our_numbers, *verdicts.claim]:
        assert all(part in md for part in text.split("; ")), text
    assert "(p): less memory, more time" in md


def test_a_figure_sits_under_the_table_it_plots():
    from ganrepro.report.figures import FIGURES, SHOWS

    assert set(SHOWS) <= set(FIGURES)
    params, run = dry_run_params(), tiny_run()
    page = paper_page(params, {"title": "P"}, [("T1", "| a |", "p_t1", ["### FID vs epoch\n\n![f](f.png)\n"]),
                                               ("T2", "| b |", "p_t2", [])], "", ["### Samples\n"], [], run)
    assert page.index("| a |") < page.index("#### FID vs epoch") < page.index("### T2") < page.index("## Figures")
