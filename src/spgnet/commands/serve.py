"""``spgnet serve [--checkpoint K] [--host 127.0.0.1] [--port 7860]``: a web page (Gradio) where
you drop a photo, pick a pose and see the person re-posed, plus the same as an HTTP API
(``/transfer``, ``/animate``; see README "Browser app"). Built on :mod:`spgnet.photo.transfer`
(:mod:`spgnet.apps.serve`); needs the ``app`` extra (gradio)."""

from __future__ import annotations

import argparse

from spgnet.apps.serve import (DEFAULT_HOST, DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT,
                               DEMO_CHECKPOINT)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from spgnet.commands.transfer import add_photo_arguments

    p.add_argument("--checkpoint", default=None, metavar="K",
                   help=f"checkpoint folder (default: the demo's, {DEMO_CHECKPOINT}, when it exists)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}: this machine only; 0.0.0.0 opens it to "
                        "the network, without any login)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="N",
                   help=f"largest upload in MB (default {DEFAULT_MAX_UPLOAD_MB:g})")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"largest photo in pixels, width x height (default {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--concurrency", type=int, default=1, metavar="N",
                   help="requests processed at once (default 1); the model itself always runs one request at "
                        "a time, more only overlaps reading uploads and writing animations")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value of the checkpoint's config (repeatable)")
    add_photo_arguments(p, target=True)


def run(args: argparse.Namespace) -> int:
    from spgnet.apps.serve import serve
    from spgnet.commands.transfer import photo_options

    return serve(args.checkpoint, args.host, args.port, args.device, args.max_upload_mb, args.max_pixels,
                 args.concurrency, args.overrides, photo_options(args))
