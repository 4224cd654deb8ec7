"""``python -m genolang``: the same as the ``genolang`` command."""

from genolang.cli import main

if __name__ == "__main__":
    main(prog_name="genolang")
