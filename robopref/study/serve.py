"""``robopref study serve``: the study's pages on uvicorn, on 127.0.0.1 unless ``--host``.

Answers are committed one transaction each as they arrive, so stopping the server (Ctrl-C,
or a kill) loses none; serving the same folder again continues every participant where
they stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from robopref.options import device_option
from robopref.reward.nets import resolve_device
from robopref.study.spec import check_study_folder

#: uvicorn's log levels (``uvicorn.config.LOG_LEVELS``)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@dataclass
class StudyServeOptions:
    """Serve a study folder to its participants."""

    study: str = field(metadata={"help": "the study folder (robopref study create --out)"})
    host: str = field(
        default="127.0.0.1",
        metadata={"help": "address to listen on (0.0.0.0: every interface, e.g. a lab network)"},
    )
    port: int = field(default=8000, metadata={"help": "port to listen on"})
    device: str = device_option("the reward model's and the robots' policies' device", "cpu")
    log_level: str = field(
        default="warning", metadata={"help": f"uvicorn's log level: {', '.join(LOG_LEVELS)}"}
    )


def study_serve_command(options: StudyServeOptions) -> int:
    """Check the folder, then serve it until stopped."""
    import uvicorn

    from robopref.study.app import create_app

    if options.log_level.lower() not in LOG_LEVELS:
        raise ValueError(f"--log-level {options.log_level!r}: use one of {', '.join(LOG_LEVELS)}")
    if not 0 < options.port < 65536:
        raise ValueError(f"--port {options.port} is not a TCP port (1..65535)")
    # A clear error before the server starts: not a study, or a damaged one (settings,
    # pool, database); the database is never created here.
    spec, _ = check_study_folder(options.study)
    resolve_device(options.device)  # names the fix for a missing GPU before serving
    app = create_app(options.study, options.device)
    print(
        f"serving {options.study} ({spec.env_id}, {spec.participants} participants) on "
        f"http://{options.host}:{options.port}/s/<token> (links in {options.study}/links.txt)",
        flush=True,
    )
    uvicorn.run(app, host=options.host, port=options.port, log_level=options.log_level.lower())
    return 0
