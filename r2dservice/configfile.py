"""Load a traitlets config file, or stop with the file, line and error."""

from __future__ import annotations

import os
import traceback


def load_or_exit(app, path: str) -> None:
    """`app.load_config_file(path)`; on an error in the file, one clear line and exit 1.

    The app must set raise_config_file_errors = True: by default traitlets logs the
    error and carries on, and the service would run on half its configuration.
    """
    try:
        app.load_config_file(path)
    except Exception as e:
        where = path
        target = os.path.abspath(path)
        frames = traceback.extract_tb(e.__traceback__)
        for frame in frames:
            if os.path.abspath(frame.filename) == target:
                where = f"{path}, line {frame.lineno}"
        # Code the file compiles and runs itself (the chart's extraConfig snippets)
        # names itself "<...>": say which snippet failed, too.
        if frames and frames[-1].filename.startswith("<"):
            where += f" ({frames[-1].filename}, line {frames[-1].lineno})"
        app.log.critical("Error in the configuration file %s: %s: %s", where, type(e).__name__, e)
        app.exit(1)
