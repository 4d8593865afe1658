"""``python -m bnextbench`` and the ``bnextbench`` command: Ctrl-C while the command line itself loads is an
interrupt like any other (one line, exit 130), not a traceback."""

import sys


def run() -> None:
    try:
        from .cli import main
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)  # the shell's exit status for SIGINT, as cli.INTERRUPTED
    main()


if __name__ == "__main__":
    run()
