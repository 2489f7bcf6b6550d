"""`manage.py webpush_keys`: a new VAPID key pair for Web Push, as environment lines.

    python manage.py webpush_keys                       # print a pair
    python manage.py webpush_keys --write .env.webpush  # write one there, only if the file is missing

`make run` uses `--write .env.webpush` (git-ignored) and exports that file to the dev server, so
the demo pushes with a stable pair; nothing is written when WEBPUSH_VAPID_PRIVATE_KEY is already set.
"""

import os

from django.conf import settings
from django.core.management.base import BaseCommand

from notifications.push import generate_vapid_keys


class Command(BaseCommand):
    help = "Print (or write to a missing file) a new VAPID key pair for Web Push."

    def add_arguments(self, parser):
        parser.add_argument(
            "--write",
            metavar="PATH",
            help="Write the pair to PATH (mode 600) unless PATH exists or the keys are already configured.",
        )

    def handle(self, *args, write=None, **options):
        if write and (os.path.exists(write) or settings.WEBPUSH_VAPID_PRIVATE_KEY):
            return
        public, private = generate_vapid_keys()
        lines = f"WEBPUSH_VAPID_PUBLIC_KEY={public}\nWEBPUSH_VAPID_PRIVATE_KEY={private}\n"
        if not write:
            self.stdout.write(lines, ending="")
            return
        descriptor = os.open(write, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write("# VAPID pair for the local demo (manage.py webpush_keys); delete this file for a new one.\n")
            file.write(lines)
        self.stdout.write(f"Web Push: wrote a new VAPID key pair to {write} (public key {public}).")
