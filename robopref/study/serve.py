"""``robopref study serve``: the study's pages on uvicorn, on 127.0.0.1 unless ``--host``.

The links in ``links.txt`` are rewritten at start to the address served (``--host``,
``--port``) or ``--public-url``. Answers are committed one transaction each as they
arrive, so stopping the server (Ctrl-C, or a kill) loses none; serving the same folder
again continues every participant where they stopped.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from robopref.options import device_option
from robopref.reward.nets import resolve_device
from robopref.study.spec import check_study_folder, write_links

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
    public_url: str = field(
        default="",
        metadata={
            "help": "the address participants reach the study at, when it is not "
            "http://HOST:PORT (behind a proxy, e.g. https://lab.example.org/study); the "
            "links in links.txt are rewritten to it"
        },
    )
    device: str = device_option("the reward model's and the robots' policies' device", "cpu")
    log_level: str = field(
        default="warning", metadata={"help": f"uvicorn's log level: {', '.join(LOG_LEVELS)}"}
    )


def served_url(options: StudyServeOptions) -> str:
    """The address the links name: ``--public-url``, else ``http://HOST:PORT`` (a host that
    listens on every interface, 0.0.0.0 or ::, is named by this machine's name)."""
    if options.public_url:
        if not options.public_url.startswith(("http://", "https://")):
            raise ValueError(
                f"--public-url {options.public_url!r} must be an address starting with "
                "http:// or https://, e.g. https://lab.example.org/study"
            )
        return options.public_url.rstrip("/")
    host = options.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    elif ":" in host:  # an IPv6 address goes in brackets in a URL
        host = f"[{host}]"
    return f"http://{host}:{options.port}"


def study_serve_command(options: StudyServeOptions) -> int:
    """Check the folder, then serve it until stopped."""
    import uvicorn

    from robopref.study.app import create_app

    if options.log_level.lower() not in LOG_LEVELS:
        raise ValueError(f"--log-level {options.log_level!r}: use one of {', '.join(LOG_LEVELS)}")
    if not 0 < options.port < 65536:
        raise ValueError(f"--port {options.port} is not a TCP port (1..65535)")
    base_url = served_url(options)
    # A clear error before the server starts: not a study, or a damaged one (settings,
    # pool, database); the database is never created here.
    spec, _ = check_study_folder(options.study)
    resolve_device(options.device)  # names the fix for a missing GPU before serving
    app = create_app(options.study, options.device)
    links = write_links(options.study, base_url)
    print(
        f"serving {options.study} ({spec.env_id}, {spec.participants} participants) on "
        f"http://{options.host}:{options.port}; the participants' links, under {base_url}, "
        f"are in {links}",
        flush=True,
    )
    uvicorn.run(app, host=options.host, port=options.port, log_level=options.log_level.lower())
    return 0
