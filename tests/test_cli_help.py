"""Every command's ``--help`` renders (argparse %-formats help strings: a bare % breaks it)."""

from __future__ import annotations

import pytest

from robopref.cli import COMMANDS, main


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_renders(command, capsys):
    argv = [*(command.split() if command else []), "--help"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage: robopref" in capsys.readouterr().out
