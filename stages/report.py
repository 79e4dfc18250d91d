"""Stage report: render reports/ (pages, tables, figures) from the metric files."""
from ganrepro import cli, paths, pipeline
from ganrepro.config import load_params
from ganrepro.report.render import load_claims, render


def main() -> None:
    params = load_params()
    written = render(params, pipeline.runs(params), paths.REPORTS, load_claims(paths.REPORTS / "claims.yaml"))
    print("\n".join(f"wrote {p}" for p in written))


if __name__ == "__main__":
    cli.main(main, "report")
