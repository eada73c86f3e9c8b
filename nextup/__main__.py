"""``python -m nextup``: the ``nextup`` command, as its installed script runs it."""

from nextup.launch import main

if __name__ == "__main__":
    main()
