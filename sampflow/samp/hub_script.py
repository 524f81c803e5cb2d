"""astropy's ``samp_hub`` command as a function: `hub_script`, over sampflow's
`SAMPHubServer`. ``sampflow hub`` is sampflow's own command for the same job.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from .hub.sync import SAMPHubServer

__all__ = ["hub_script"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samp_hub", description="Run a SAMP 1.3 hub "
                                     "(sampflow), with astropy's samp_hub options.")
    parser.add_argument("-k", "--secret", dest="secret", metavar="CODE",
                        help="custom secret code")
    parser.add_argument("-d", "--addr", dest="addr", metavar="ADDR",
                        help="listening address (loopback by default)")
    parser.add_argument("-p", "--port", dest="port", metavar="PORT", type=int, default=0,
                        help="listening port number")
    parser.add_argument("-f", "--lockfile", dest="lockfile", metavar="FILE",
                        help="custom lockfile")
    parser.add_argument("-w", "--no-web-profile", dest="web_profile", action="store_false",
                        default=True, help="run the hub without the Web Profile")
    parser.add_argument("-P", "--pool-size", dest="pool_size", metavar="SIZE", type=int,
                        default=20, help="accepted for compatibility; connections are pooled")
    parser.add_argument("-t", "--timeout", dest="timeout", metavar="SECONDS", type=float,
                        default=0, help="stop when no client is registered, looking every "
                        "SECONDS (0: never)")
    parser.add_argument("-c", "--client-timeout", dest="client_timeout", metavar="SECONDS",
                        type=float, default=0, help="seconds allowed for each callback")
    parser.add_argument("-L", "--log-level", dest="loglevel", metavar="LEVEL", default="INFO",
                        choices=["CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO",
                                 "DEBUG", "NOTSET"], help="log level")
    parser.add_argument("-O", "--log-output", dest="logout", metavar="FILE",
                        help="write the log to FILE")
    parser.add_argument("-l", "--label", dest="label", metavar="LABEL", default="",
                        help="a label added to the hub's name")
    parser.add_argument("-m", "--multi", dest="mode", action="store_const", const="multiple",
                        default="single", help="multi-instance mode: a private lockfile "
                        "in ~/.samp-1")
    return parser


def hub_script(timeout: float = 0) -> None:
    """Run a hub with astropy's ``samp_hub`` command-line options until interrupted.

    The Web Profile is on unless ``-w``; web pages are asked about on the terminal (refused
    when there is none, SAMP 1.3 section 5.4.2).

    Parameters
    ----------
    timeout : float
        Stop after this many seconds (0: run until Ctrl-C, SIGTERM, or the hub's own
        ``--timeout``), as astropy's.

    Raises
    ------
    sampflow.samp.hub.server.HubAlreadyRunning
        If a live hub owns the lockfile.
    """
    options = _parser().parse_args(sys.argv[1:])
    handler: logging.Handler = (logging.FileHandler(options.logout) if options.logout
                                else logging.StreamHandler())
    logger = logging.getLogger("sampflow")
    logger.addHandler(handler)
    logger.setLevel(options.loglevel)
    hub = SAMPHubServer(secret=options.secret, addr=options.addr, port=options.port,
                        lockfile=options.lockfile, timeout=options.timeout,
                        client_timeout=options.client_timeout, mode=options.mode,
                        label=options.label, web_profile=options.web_profile,
                        pool_size=options.pool_size)
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    hub.start()
    try:
        if timeout > 0:
            stop.wait(timeout)
        else:  # the hub may also stop itself (its --timeout): look twice a second
            while hub.is_running and not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
        logger.removeHandler(handler)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
