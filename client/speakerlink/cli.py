"""`speakerlink`: diarize clips, score them against a reference, and inspect, watch and
export jobs, from a terminal."""

from __future__ import annotations

import sys

try:  # a Ctrl-C while the command starts up has interrupted nothing: no traceback for it
    import argparse
    import contextlib
    import dataclasses
    import json
    import os
    import shlex
    import signal
    import tempfile
    import threading
    import time
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from google.protobuf import json_format

    from speakerlink import __version__, condition_spec
    from speakerlink import live as live_audio
    from speakerlink.client import DEFAULT_TARGET, Client
    from speakerlink.errors import DeadlineExceededError, SpeakerlinkError, TransportError
    from speakerlink.events import RECONNECT_SECONDS, is_terminal, terminal_outcome
    from speakerlink.options import EXPORT_FORMATS
    from speakerlink.progress import ProgressDisplay
    from speakerlink.text import plural, printable
    from speakerlink.v1 import speakerlink_pb2 as pb
except KeyboardInterrupt:
    raise SystemExit(130) from None

# After the last byte of an upload the server may be creating the job: a Ctrl-C then waits
# this long at most for its id (see _Job).
HANDOVER_WAIT_S = 10.0
# The SDK's hints name its keyword arguments; a person at the CLI gives flags instead.
CLI_NAMES = (("tls=", "--tls/--tls-ca"), ("cert=", "--tls-cert/--tls-key"), ("target=", "--server HOST:PORT"))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["serve"], ["fetch-models"]):
        return _server_command(argv[0], argv[1:])
    job = _Job()
    args = argparse.Namespace(job=job)
    try:
        args = _parser().parse_args(argv, namespace=args)
        with job.interruptible():
            _check_output(getattr(args, "output", None), args)
            with Client(args.server or DEFAULT_TARGET, reconnect_seconds=args.reconnect_seconds,
                        **_connection(args)) as client:
                return args.run(client, args)
    except BrokenPipeError:  # a reader such as `head` left: stop quietly, as Python's docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (KeyboardInterrupt, DeadlineExceededError) as err:
        if job.id:  # the job itself goes on: only this command stopped following it
            print(f"\nstopped following job {job.id}; it goes on on the server.\n{_reach_again(args, job.id)}",
                  file=sys.stderr)
        elif job.handed_over:
            print("\nstopped before the server answered; the job may have been created: see `speakerlink jobs`",
                  file=sys.stderr)
        elif isinstance(err, DeadlineExceededError):
            print(_for_cli(err.describe()), file=sys.stderr)
        return 130 if isinstance(err, KeyboardInterrupt) else 1
    except SpeakerlinkError as err:
        err.job_id = err.job_id or job.id
        print(_for_cli(err.describe()), file=sys.stderr)
        if err.job_id and isinstance(err, TransportError):  # the job's fate is unknown to this command, not over
            print(_reach_again(args, err.job_id), file=sys.stderr)
        return 1
    except (ValueError, OSError) as err:
        print(_for_cli(f"error: {err}") + (f" (job {job.id})" if job.id else ""), file=sys.stderr)
        return 2


def _for_cli(text: str) -> str:
    """An error's explanation, escaped line by line (names in it come from callers), with flags
    where the SDK names keywords."""
    for sdk, flags in CLI_NAMES:
        text = text.replace(sdk, flags)
    return "\n".join(printable(line) for line in text.split("\n"))


def _reach_again(args: argparse.Namespace, job_id: str) -> str:
    """How to follow or stop the job later, with the connection flags this command was given."""
    flags = [("--server", args.server), ("--tls", args.tls), ("--tls-ca", args.tls_ca),
             ("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key), ("--token-file", args.token_file)]
    words = [w for flag, value in flags if value for w in ([flag] if value is True else [flag, str(value)])]
    command = shlex.join(["speakerlink", *words])
    return f"  follow it: {command} watch {job_id}\n  stop it:   {command} cancel {job_id}"


@dataclasses.dataclass
class _Job:
    """The job a command follows, once the server has accepted it.

    Between the last byte of an upload and `accepted` the server may be creating the job, and
    once it has, the job runs whether or not anyone listens. A Ctrl-C there would leave a job
    nobody knows the id of, so it is held until the server's answer (the id, or a refusal)
    arrives, for HANDOVER_WAIT_S at most; a second Ctrl-C stops at once. Before the last byte
    the server has created nothing (it reads the upload to its end first), so a Ctrl-C stops
    at once: the cancelled call makes the server drop the partial upload. An id the client
    made up and looked for afterwards would race with the server creating the job; waiting
    for the answer cannot.
    """

    id: str = ""
    handed_over: bool = False  # every byte of the upload went to the server
    interrupted: bool = False  # a Ctrl-C arrived while handed over; raised once the id is known

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        timer = threading.Timer(HANDOVER_WAIT_S, signal.raise_signal, (signal.SIGINT,))
        timer.daemon = True

        def on_interrupt(signum: int, frame: object) -> None:
            if self.id or not self.handed_over or self.interrupted:
                raise KeyboardInterrupt
            self.interrupted = True
            print(f"\nwaiting for the server to accept the job, to tell you its id ({HANDOVER_WAIT_S:.0f} s at most; "
                  "Ctrl-C again to stop now)", file=sys.stderr)
            timer.start()

        previous = signal.signal(signal.SIGINT, on_interrupt)
        try:
            yield
        finally:
            timer.cancel()
            signal.signal(signal.SIGINT, previous)

    def accepted(self, job_id: str) -> None:
        self.id = job_id
        if self.interrupted:
            raise KeyboardInterrupt


def _check_output(output: Path | None, args: argparse.Namespace) -> None:
    """Catch a bad -o before any upload, not after the job has run."""
    if output is None:
        return
    if getattr(args, "format", "") in ZIPPED and len(getattr(args, "files", ())) > 1:
        _check_zip_name(output, args.format)
    if output.is_dir():
        raise ValueError(f"-o {output} is a folder; give a file name")
    folder = output.parent
    if not folder.is_dir():
        raise ValueError(f"-o {output}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise ValueError(f"-o {output} cannot be written")


# Subtitles belong to one media file each: those of several clips come as a zip.
ZIPPED = ("srt", "vtt")


def _check_zip_name(output: Path, fmt: str) -> None:
    if output.suffix.lower() != ".zip":
        raise ValueError(f"-o {output}: the {fmt} of several clips is a zip of one file per clip; "
                         f"give -o NAME.zip, or export one clip with --clip N")


def _add_connection_flags(parser: argparse.ArgumentParser, default: object) -> None:
    def flag(*names: str, **kwargs: object) -> None:
        parser.add_argument(*names, default=default, **kwargs)

    flag("--server", help=f"HOST:PORT of the server (default {DEFAULT_TARGET}; env SPEAKERLINK_SERVER)")
    flag("--tls", action="store_true", help="speak TLS, trusting the system's certificate authorities")
    flag("--tls-ca", type=Path, help="speak TLS, trusting this CA bundle (PEM; env SPEAKERLINK_TLS_CA)")
    flag("--tls-cert", type=Path, help="client certificate (PEM) for mutual TLS (env SPEAKERLINK_TLS_CERT)")
    flag("--tls-key", type=Path, help="private key (PEM) of --tls-cert (env SPEAKERLINK_TLS_KEY)")
    flag("--token-file", type=Path,
         help="read the bearer token from this file (env SPEAKERLINK_TOKEN holds a token itself)")


def _connection(args: argparse.Namespace) -> dict:
    """Client arguments from the connection flags; what is not given, the SDK reads from the environment."""
    if args.tls_cert is not None and args.tls_key is None:
        raise ValueError("--tls-cert needs --tls-key")
    token = args.token_file.read_text().strip() if args.token_file else None
    if args.token_file and not token:
        raise ValueError(f"--token-file {args.token_file} is empty")
    return {"tls": args.tls_ca or (True if args.tls else None),
            "cert": (args.tls_cert, args.tls_key) if args.tls_cert else None, "token": token}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speakerlink", description="Diarize audio clips and link speakers across them.")
    parser.add_argument("--version", action="version", version=f"speakerlink {__version__}")
    parser.set_defaults(reconnect_seconds=RECONNECT_SECONDS)
    # The connection flags are taken after the command too; there they keep the value given before unless set.
    common = argparse.ArgumentParser(add_help=False)
    for where, default in ((parser, None), (common, argparse.SUPPRESS)):
        _add_connection_flags(where, default)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="what to do; `speakerlink COMMAND --help` says more")

    def command(name: str, help: str, under: argparse._SubParsersAction = sub) -> argparse.ArgumentParser:
        return under.add_parser(name, help=help, description=help, parents=[common])

    d = command("diarize", "upload clips, diarize them and link their speakers")
    d.add_argument("files", nargs="+", type=Path, help="audio files, diarized and linked as one job")
    d.add_argument("--format", choices=list(EXPORT_FORMATS), default="text", help="how to print the result (default text)")
    d.add_argument("-o", "--output", type=Path, help="write the result here instead of stdout")
    _add_diarize_options(d)
    d.set_defaults(run=_diarize)

    v = command("eval", "diarize clips and score them against a reference RTTM (needs the [eval] extra)")
    v.add_argument("files", nargs="+", type=Path, help="clips; each is scored as the RTTM file id of its name without extension")
    v.add_argument("-r", "--reference", type=Path, required=True, help="reference RTTM covering the clips")
    v.add_argument("--uem", type=Path, help="scored span of each clip (default: the whole clip)")
    v.add_argument("--in-process", action="store_true",
                   help="run a server inside this command (needs the [server] extra) instead of using --server")
    v.add_argument("--keep-artifacts", type=Path, metavar="DIR",
                   help="with --in-process: keep what each step produced, as DIR/<clip>/{segment,embed,cluster,turns}.npz "
                        "and DIR/link.npz, to see where a clip went wrong")
    v.add_argument("--json", action="store_true", help="print the scores as JSON instead of a table")
    v.add_argument("--condition", metavar="SPEC",
                   help="pass each clip through a recording condition first, e.g. far-room, phone-gsm, "
                        "noise-babble:snr=5..15+mp3 (python -m speakerlink.conditions --help; needs ffmpeg)")
    v.add_argument("--condition-seed", type=int, default=0, metavar="N",
                   help="seed of the condition's draws: the same seed gives the same audio (default 0)")
    _add_diarize_options(v)
    v.set_defaults(run=_eval)

    live = command("live", "diarize as audio comes: a file at its own pace, or the microphone; turns are printed "
                           "as they are decided, and the stream is kept as a job")
    source = live.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", type=Path, help="audio file to stream (any format ffmpeg reads)")
    source.add_argument("--mic", action="store_true", help="capture the default input device through ffmpeg instead")
    live.add_argument("--latency", type=float, default=2.0,
                      help="seconds of audio between a word and its final speaker, 0.5-5 (default 2)")
    live.add_argument("--speed", type=float, default=1.0,
                      help="pace of a file: 1 its real pace (default), 4 four times faster, 0 as fast as possible")
    live.add_argument("--max-speakers", type=int, help="at most this many speakers in the stream")
    live.add_argument("--engine", default="", help="embedder to use (see `speakerlink info`)")
    live.add_argument("--name", default="", help="name of the stream in the job (default: the file's name, or 'microphone')")
    live.add_argument("--no-recognize", dest="recognize", action="store_false",
                      help="leave speakers unnamed even where they match an enrolled voice")
    live.add_argument("--format", choices=list(EXPORT_FORMATS),
                      help="at the end, print the stored result in this format (the turns then go to stderr as they come)")
    live.add_argument("-o", "--output", type=Path, help="write the result here at the end, in --format (default json)")
    live.add_argument("--no-progress", action="store_true", help="print no provisional status line")
    live.set_defaults(run=_live)

    i = command("info", "engines, device, limits and formats of the server")
    i.add_argument("--json", action="store_true", help="print the server's answer as JSON")
    i.set_defaults(run=_info)

    w = command("watch", "follow a job until it ends, then print its result")
    w.add_argument("job_id", help="the id `diarize` printed when the job was accepted")
    w.add_argument("--format", choices=list(EXPORT_FORMATS), default="text", help="how to print the result (default text)")
    w.add_argument("-o", "--output", type=Path, help="write the result here instead of stdout")
    w.add_argument("--timeout", type=float, help="stop watching after this many seconds (the job goes on)")
    _add_reconnect_flag(w)
    w.add_argument("--no-progress", action="store_true", help="print no progress")
    w.set_defaults(run=_watch)

    e = command("export", "a finished job's result as json, csv, text, rttm, srt or vtt")
    e.add_argument("job_id", help="the id `diarize` printed when the job was accepted")
    e.add_argument("--format", choices=list(EXPORT_FORMATS), default="json", help="export format (default json)")
    e.add_argument("--clip", type=int, help="only the clip with this index (0 for the first sent)")
    e.add_argument("-o", "--output", type=Path, help="write here instead of stdout (a zip of subtitles always goes to a file)")
    e.set_defaults(run=_export)

    j = command("jobs", "the server's jobs, newest first: to find a job id again")
    j.add_argument("--limit", type=int, default=20, help="how many to list (default 20)")
    j.add_argument("--json", action="store_true", help="print the server's answer as JSON")
    j.set_defaults(run=_jobs)

    c = command("cancel", "cancel a queued or running job")
    c.add_argument("job_id", help="the job to cancel")
    c.set_defaults(run=_cancel)

    r = command("delete", "delete a job's audio and result now")
    r.add_argument("job_id", help="the job to delete")
    r.set_defaults(run=lambda client, a: _print(f"{a.job_id}: deleted" if client.delete(a.job_id) else "not found"))

    web = command("web", "serve the web page over the service (needs the [web] extra)")
    web.add_argument("--host", default="127.0.0.1", help="address the page listens on (default 127.0.0.1)")
    web.add_argument("--port", type=int, default=8080, help="port of the page (default 8080)")
    web.add_argument("--insecure", action="store_true",
                     help="allow a non-loopback --host: the page speaks plain HTTP (only on a network you trust)")
    web.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                     help="a name the page is reached by besides its --host and loopback (repeatable); "
                          "requests naming another host are refused")
    web.set_defaults(run=_web)
    library = command("speakers", "the voice library: named voices that jobs recognise")
    actions = library.add_subparsers(dest="action", required=True, metavar="ACTION",
                                     help="what to do; `speakerlink speakers ACTION --help` says more")

    enroll = command("enroll", "enroll a named voice from audio of that person alone, or from a finished job's speaker", actions)
    enroll.add_argument("name", help="the person's name, e.g. 'Alice Smith'")
    enroll.add_argument("files", nargs="*", type=Path, help="audio of the person alone (at least 3 s of speech)")
    enroll.add_argument("--from-job", metavar="JOB", help="take the voice from this finished job instead of files")
    enroll.add_argument("--speaker", help="with --from-job: the job's speaker, e.g. S3")
    enroll.set_defaults(run=_enroll)
    listing = command("list", "the enrolled voices, with the speech each rests on", actions)
    listing.add_argument("--json", action="store_true", help="print the server's answer as JSON")
    listing.set_defaults(run=_speakers)
    rename = command("rename", "give a voice another name", actions)
    rename.add_argument("name", help="its name now")
    rename.add_argument("new_name", help="its new name")
    rename.set_defaults(run=lambda client, a: _print(_voice_line(client.rename_speaker(a.name, a.new_name))))
    forget = command("delete", "delete a voice and every embedding of it", actions)
    forget.add_argument("name", help="the voice to delete")
    forget.set_defaults(run=lambda client, a: _print(f"{a.name}: deleted" if client.delete_speaker(a.name) else "not found"))

    sub.add_parser("serve", help="run the server (needs `pip install 'speakerlink[server]'`; see `speakerlink serve --help`)")
    sub.add_parser("fetch-models", help="download the embedded default's model files once, for the server (needs the "
                                        "[server] extra; see `speakerlink fetch-models --help`)")
    return parser


def _add_diarize_options(p: argparse.ArgumentParser) -> None:
    count = p.add_mutually_exclusive_group()
    count.add_argument("--num-speakers", type=int, help="exact number of speakers in each clip")
    count.add_argument("--min-speakers", type=int, help="at least this many speakers per clip")
    p.add_argument("--max-speakers", type=int, help="at most this many speakers per clip")
    p.add_argument("--link-threshold", type=float, help="cosine similarity needed to link speakers across clips")
    p.add_argument("--engine", default="", help="embedder to use (see `speakerlink info`)")
    p.add_argument(
        "--transcribe", action=argparse.BooleanOptionalAction, default=None,
        help="transcribe with the server's transcriber (default: wherever the server has one)",
    )
    p.add_argument("--language", default="", help="language code for transcription, e.g. en_us, de (default: the transcriber's)")
    p.add_argument("--no-recognize", dest="recognize", action="store_false",
                   help="leave speakers unnamed even where they match an enrolled voice (`speakerlink speakers`)")
    p.add_argument("--timeout", type=float, help="give up after this many seconds")
    _add_reconnect_flag(p)
    p.add_argument("--no-progress", action="store_true", help="print no progress")


def _add_reconnect_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reconnect-seconds", type=float, default=RECONNECT_SECONDS,
                   help=f"when the server goes away mid-job, try to reach it again this long before giving up "
                        f"(default {RECONNECT_SECONDS:g})")


def _run_diarize(client: Client, args: argparse.Namespace) -> pb.DiarizationResult:
    """Upload args.files with the diarize options, showing progress, and return the result."""
    display = None if args.no_progress else ProgressDisplay(clip_names=[p.name for p in args.files])
    options = dict(
        num_speakers=args.num_speakers, min_speakers=args.min_speakers, max_speakers=args.max_speakers,
        link_threshold=args.link_threshold, engine=args.engine, transcribe=args.transcribe, language=args.language,
        recognize=args.recognize,
    )

    def uploaded(sent: int, total: int) -> None:
        args.job.handed_over = sent >= total
        if display is not None:
            display.upload(sent, total)

    events = client.iter_diarize(args.files, on_upload=uploaded, on_retry=_retry_note(display),
                                 timeout=args.timeout, **options)
    return _follow(events, display, args.job)


def _retry_note(display: ProgressDisplay | None):
    """Puts each wait to try again on the progress line: a server gone away, or a busy one."""
    def note(error: SpeakerlinkError, delay: float) -> None:
        if display is None:
            return
        if isinstance(error, TransportError):
            display.waiting("server unreachable, retrying")
        else:
            display.note(printable(f"{error.code}: {error.message}; trying again in {delay:.0f} s"))
    return note


def _diarize(client: Client, args: argparse.Namespace) -> int:
    result = _run_diarize(client, args)
    for warning in result.summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _write(client.export(result.job_id, args.format), args.output)
    return 0


def _watch(client: Client, args: argparse.Namespace) -> int:
    display = None if args.no_progress else ProgressDisplay()
    args.job.id = args.job_id
    result = _follow(client.watch(args.job_id, timeout=args.timeout, on_retry=_retry_note(display)), display, args.job)
    _write(client.export(result.job_id, args.format), args.output)
    return 0


def _live(client: Client, args: argparse.Namespace) -> int:
    """Stream a file or the microphone; the first Ctrl-C ends the stream (what was heard is
    kept and printed), a second one stops at once."""
    if args.speed < 0:
        raise ValueError("--speed must be 0 (as fast as possible) or more")
    if args.mic:
        source, name = live_audio.microphone_source(), args.name or "microphone"
    else:
        source, name = live_audio.file_source(args.file), args.name or args.file.name
    if args.format is None and args.output is not None:
        args.format = "json"
    stop = threading.Event()

    def on_interrupt(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nending the stream; Ctrl-C again to stop at once", file=sys.stderr)

    speed = 1.0 if args.mic else args.speed
    frames = live_audio.paced(source.frames, source.sample_rate * source.channels * 2, speed, stop)
    turns_out = sys.stderr if args.format else sys.stdout
    status = None if args.no_progress or not sys.stderr.isatty() else ProgressDisplay()
    result, ended = None, None
    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        events = client.live(frames, sample_rate=source.sample_rate, channels=source.channels, latency=args.latency,
                             max_speakers=args.max_speakers, recognize=args.recognize, engine=args.engine, name=name)
        for event in events:
            kind = event.WhichOneof("event")
            if kind == "accepted":
                args.job.accepted(event.job_id)
                print(f"live stream {event.job_id}: {'listening' if args.mic else 'streaming ' + name}"
                      f" (latency {args.latency:g} s; Ctrl-C ends it)", file=sys.stderr)
            elif kind == "update":
                if status is not None:
                    status.clear()
                for turn in event.update.final_turns:
                    print(_live_line(turn), file=turns_out, flush=True)
                if status is not None:
                    status.status(_live_status(event.update))
            elif kind == "result":
                result = event.result
    except SpeakerlinkError as err:
        if result is None:
            raise
        ended = err
    finally:
        signal.signal(signal.SIGINT, previous)
        source.frames.close()
        if status is not None:
            status.clear()
    if ended is not None:
        print(_for_cli(ended.describe()), file=sys.stderr)
    speakers = ", ".join(s.label + (f" ({printable(s.name)})" if s.name else "") for s in result.speakers)
    print(f"job {result.job_id}: {result.summary.audio_seconds:.1f} s heard, {plural(len(result.speakers), 'speaker')}"
          f"{': ' + speakers if speakers else ''}; kept for `speakerlink export {result.job_id}`", file=sys.stderr)
    if args.format:
        _write(client.export(result.job_id, args.format), args.output)
    return 1 if ended is not None else 0


def _live_line(turn: pb.LiveTurn) -> str:
    who = f"{turn.speaker} ({printable(turn.name)})" if turn.name else turn.speaker
    return f"{_clock(turn.start)} - {_clock(turn.end)}  {who}"


def _live_status(update: pb.StreamUpdate) -> str:
    """Who is speaking at the newest audio, as it stands (it may still change)."""
    now = [t for t in update.provisional_turns if t.end >= update.heard_seconds - 0.5]
    who = ", ".join(t.speaker + (f" ({printable(t.name)})" if t.name else "") for t in now) or "silence"
    return f"{_clock(update.heard_seconds)} heard, decided to {_clock(update.decided_until)}; now: {who}"


def _clock(seconds: float) -> str:
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes):02d}:{rest:05.2f}"


def _eval(client: Client, args: argparse.Namespace) -> int:
    if args.keep_artifacts and not args.in_process:
        print("error: --keep-artifacts needs --in-process: only a server inside this command can write each step's results here",
              file=sys.stderr)
        return 2
    try:
        from speakerlink import evaluation
    except ImportError as err:
        print(f"error: scoring needs pyannote.metrics ({err}); run: pip install 'speakerlink[eval]'", file=sys.stderr)
        return 2
    chain = condition_spec.parse(args.condition) if args.condition else None
    reference = evaluation.read_rttm(args.reference)
    uem = evaluation.read_uem(args.uem) if args.uem else {}
    missing = [p.name for p in args.files if evaluation.clip_id(p.name) not in reference.keys() | uem.keys()]
    if missing:
        raise ValueError(f"{args.reference} has no turns for {', '.join(missing)} "
                         f"(its file ids: {', '.join(sorted(reference)) or 'none'}); give a --uem to score silent clips")
    with contextlib.ExitStack() as stack:
        if chain is not None:
            args.files = _conditioned(chain, args, reference, Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="speakerlink-condition-"))))
        if args.in_process:
            local = _local_server(args.files, args.keep_artifacts)
            client = stack.enter_context(Client(stack.enter_context(local), tls=False, token=""))
        started = time.monotonic()
        result = _run_diarize(client, args)
        wall = time.monotonic() - started
    spans = {evaluation.clip_id(c.name): uem.get(evaluation.clip_id(c.name), (0.0, c.duration_seconds)) for c in result.clips}
    report = evaluation.score(reference, evaluation.hypothesis_of(result), spans)
    report.audio_seconds, report.processing_seconds = result.summary.audio_seconds, result.summary.processing_seconds
    report.wall_seconds = wall
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    if args.keep_artifacts:
        print(f"each step's results: {args.keep_artifacts}/<clip>/<step>.npz and {args.keep_artifacts}/link.npz",
              file=sys.stderr)
    return 0


def _conditioned(chain: condition_spec.Chain, args: argparse.Namespace, reference: dict, folder: Path) -> list[Path]:
    """The clips through the --condition, written into `folder` under their own clip ids."""
    try:
        from speakerlink import conditions
    except ImportError as err:
        raise ValueError(f"--condition needs numpy, scipy and pyroomacoustics ({err}); "
                         "run: pip install 'speakerlink[eval]'") from None
    if not args.no_progress:
        print(f"conditioning {plural(len(args.files), 'clip')}: {chain.spec} (seed {args.condition_seed})", file=sys.stderr)
    return conditions.condition_files(chain, args.files, folder, seed=args.condition_seed, reference=reference)


@contextlib.contextmanager
def _local_server(files: list[Path], artifacts: Path | None = None) -> Iterator[str]:
    """A server on a free loopback port for this command alone; yields its address. With
    `artifacts`, its jobs keep what each step produced there (pipeline.hooks.ArtifactHook)."""
    try:
        from speakerlink_server.config import load_config
        from speakerlink_server.main import start_server
        from speakerlink_server.pipeline.hooks import ArtifactHook
    except ImportError as err:
        raise ValueError(f"--in-process needs the server ({err}); run: pip install 'speakerlink[server]'") from None
    with tempfile.TemporaryDirectory(prefix="speakerlink-eval-") as data:
        base = load_config()  # the SPEAKERLINK_* environment still applies, e.g. the engine
        config = dataclasses.replace(
            base, host="127.0.0.1", port=0, data_dir=Path(data), max_clips=max(len(files), base.max_clips),
            max_file_bytes=max([base.max_file_bytes, *(p.stat().st_size for p in files)]),
            tls_cert="", tls_key="", tls_client_ca="", tenants_file="", database="",  # for this command alone
        )
        running = start_server(config, hooks=[ArtifactHook(artifacts)] if artifacts else ())
        try:
            yield running.config.address
        finally:
            running.stop(grace=1.0)


def _follow(events, display: ProgressDisplay | None, job: _Job) -> pb.DiarizationResult:
    try:
        for event in events:
            if event.HasField("accepted"):
                if display is not None:
                    display.note(f"job {event.job_id} accepted")
                job.accepted(event.job_id)
            if event.HasField("progress") and display is not None:
                display.progress(event.progress)
            if is_terminal(event):
                result = terminal_outcome(event)
                break
    finally:
        if display is not None:
            display.close()
    return result


def _info(client: Client, args: argparse.Namespace) -> int:
    info = client.info()
    if args.json:
        print(json_format.MessageToJson(info, preserving_proto_field_name=True, indent=2))
        return 0
    limits = info.limits
    print(f"speakerlink {info.version} on {info.device}")
    print("engines:")
    name_width = max((len(engine.name) for engine in info.engines), default=0)
    kind_width = max((len(engine.kind) for engine in info.engines), default=0)
    for engine in info.engines:
        mark = "*" if engine.active else ("+" if engine.available else "-")
        print(f"  {mark} {engine.name:<{name_width}}  {engine.kind:<{kind_width}}  {engine.reason}")
    print(f"limits: {plural(limits.max_clips, 'clip')}, {limits.max_file_bytes / 2**20:.0f} MiB and "
          f"{limits.max_clip_seconds / 3600:g} h of audio per file, {limits.max_job_seconds / 3600:g} h per job, "
          f"{plural(limits.workers, 'worker')}, {plural(limits.max_queued_jobs, 'queued job')}, "
          f"results kept {limits.job_ttl_seconds // 3600} h, "
          f"{limits.max_streams} uploads/watchers at once, uploads cut off after {limits.upload_idle_seconds:g} s of silence")
    if info.HasField("quota") and info.quota.tenant:
        quota = info.quota

        def most(value: float, unit: str = "") -> str:
            return f"{value:g}{unit}" if value else "no limit"

        print(f"tenant {quota.tenant}: uploads at once {most(quota.max_uploads)}, jobs waiting "
              f"{most(quota.max_queued_jobs)}, audio a day {most(quota.audio_seconds_per_day, ' s')} "
              f"({quota.audio_seconds_used:g} s used in the last 24 hours)")
    print(f"formats: {', '.join(info.formats)}")
    print(f"default link threshold: {info.default_link_threshold:.2f}")
    return 0


def _export(client: Client, args: argparse.Namespace) -> int:
    _write(client.export(args.job_id, args.format, args.clip), args.output)
    return 0


def _write(export: pb.ExportResponse, output: Path | None) -> None:
    """Text to stdout unless -o is given; a zip (subtitles of several clips) to a file always,
    named .zip."""
    if export.content_type == "application/zip":
        if output is None:
            output = Path(export.filename)
        _check_zip_name(output, pb.ExportFormat.Name(export.format).removeprefix("EXPORT_FORMAT_").lower())
    if output is None:
        sys.stdout.write(export.content.decode("utf-8"))
        sys.stdout.flush()
    else:
        output.write_bytes(export.content)
        print(f"wrote {output}", file=sys.stderr)


def _jobs(client: Client, args: argparse.Namespace) -> int:
    jobs = client.list_jobs(args.limit)
    if args.json:
        print(json.dumps([json_format.MessageToDict(j, preserving_proto_field_name=True) for j in jobs], indent=2))
        return 0
    for job in jobs:
        created = job.created_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        print(f"{job.job_id}  {_state(job.state):<9}  {created} UTC  {printable(', '.join(job.clip_names))}")
    if not jobs:
        print("no jobs", file=sys.stderr)
    return 0


def _enroll(client: Client, args: argparse.Namespace) -> int:
    if args.from_job:
        if args.files or not args.speaker:
            raise ValueError("--from-job takes --speaker (e.g. S3) and no files")
        return _print(_voice_line(client.enroll_from_job(args.name, args.from_job, args.speaker)))
    if not args.files or args.speaker:
        raise ValueError("give audio files of the person, or --from-job JOB --speaker S3")
    return _print(_voice_line(client.enroll(args.name, args.files)))


def _speakers(client: Client, args: argparse.Namespace) -> int:
    voices = client.list_speakers()
    if args.json:
        print(json.dumps([json_format.MessageToDict(v, preserving_proto_field_name=True) for v in voices], indent=2))
        return 0
    for voice in voices:
        print(_voice_line(voice))
    if not voices:
        print("no voices enrolled", file=sys.stderr)
    return 0


def _voice_line(voice: pb.Voice) -> str:
    times = "once" if voice.enrollments == 1 else f"{voice.enrollments} times"
    return f"{printable(voice.name)}: {voice.speech_seconds:.1f} s of speech, enrolled {times} ({', '.join(voice.engines)})"


def _web(client: Client, args: argparse.Namespace) -> int:
    try:
        from speakerlink.web import serve
    except ImportError as err:
        raise ValueError(f"the web page needs the [web] extra ({err}): pip install 'speakerlink[web]'") from None
    serve(client.target, _connection(args), args.host, args.port, insecure=args.insecure, names=tuple(args.allow_host))
    return 0


def _cancel(client: Client, args: argparse.Namespace) -> int:
    state = client.cancel(args.job_id).state
    if state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING):
        return _print(f"{args.job_id}: cancel requested; it stops at its next step (was {_state(state)})")
    return _print(f"{args.job_id}: {_state(state)}")


def _print(text: str) -> int:
    print(text)
    return 0


def _state(state: int) -> str:
    return pb.JobState.Name(state).removeprefix("JOB_STATE_").lower()


def _server_command(command: str, argv: list[str]) -> int:
    """`serve` and `fetch-models` belong to the server package, which the thin client may lack."""
    try:
        if command == "serve":
            from speakerlink_server.main import main as run
        else:
            from speakerlink_server.engines.weights import main as run
    except ImportError as err:
        print(f"error: the server is not installed ({err}); run: pip install 'speakerlink[server]'", file=sys.stderr)
        return 2
    return run(argv, prog=f"speakerlink {command}") or 0


if __name__ == "__main__":
    sys.exit(main())
