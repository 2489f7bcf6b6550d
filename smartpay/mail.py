"""A console email backend for development that prints what a person reads, not the attachments.

Django's console backend prints the whole MIME message, so every invoice email filled the dev
server's console with its PDF and XML in base64. This one prints the headers, the text body and,
for each attachment, its name, type and size.
"""

from django.core.mail.backends.console import EmailBackend as DjangoConsoleBackend


class ConsoleEmailBackend(DjangoConsoleBackend):
    def write_message(self, message):
        lines = [
            f"From: {message.from_email}",
            f"To: {', '.join(message.to)}",
            *([f"Cc: {', '.join(message.cc)}"] if message.cc else []),
            *([f"Bcc: {', '.join(message.bcc)}"] if message.bcc else []),
            f"Subject: {message.subject}",
            "",
            str(message.body),
        ]
        for attachment in message.attachments:
            if isinstance(attachment, tuple):
                name, content, mimetype = attachment
            else:  # a MIMEBase part
                name = attachment.get_filename() or "(unnamed)"
                content, mimetype = attachment.get_payload(decode=True) or b"", attachment.get_content_type()
            lines.append(f"[attachment: {name} ({mimetype}, {len(content)} bytes)]")
        self.stream.write("\n".join(lines) + "\n" + "-" * 79 + "\n")
