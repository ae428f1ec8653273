import pytest

from domicile.topology import load_topology


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory):
    """The real app, synthesized once per test process (bundling reuses the pip cache)."""
    from infra.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(load_topology(), outdir=str(outdir))
    assembly = app.synth()
    return app, assembly, outdir
