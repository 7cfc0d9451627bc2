import pytest

from medlt.cli import main


@pytest.mark.parametrize("verb,words", [("classify", ["--train-manifest", "cRT"]),
                                        ("evaluate", ["--synthetic", "--feature-extractor", "report.html"]),
                                        ("report", ["--html", "report.json"])])
def test_verbs_have_help(verb, words, capsys):
    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for w in words:
        assert w in out
