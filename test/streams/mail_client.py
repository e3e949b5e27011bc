"""A mail client for test/streams: python3's smtplib and imaplib, as a user's scripts would use them.

Usage:
  mail_client.py send PORT USER PASSWORD FROM TO FILE [MORE...]
                                                         a mail with FILE attached (STARTTLS, AUTH,
                                                         NOTIFY=SUCCESS); MORE files go into a nested
                                                         multipart/mixed part, as a forwarded bundle;
                                                         prints {"refused": {...}}
  mail_client.py fetch PORT USER PASSWORD                every INBOX message (STARTTLS, LOGIN);
                                                         prints [{"subject", "raw"}], raw in latin-1
The gateways' certificates are self-signed: not verified (loopback only).
"""
import imaplib
import json
import mimetypes
import os
import smtplib
import ssl
import sys
from email.message import EmailMessage

mode, port, user, password, *rest = sys.argv[1:]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

def attach(msg, path):
    maintype, subtype = (mimetypes.guess_type(path)[0] or 'application/octet-stream').split('/')
    with open(path, 'rb') as f:
        msg.add_attachment(f.read(), maintype=maintype, subtype=subtype, filename=os.path.basename(path))

if mode == 'send':
    sender, to, path, *more = rest
    msg = EmailMessage()
    msg['From'] = sender
    msg['To'] = to
    msg['Subject'] = 'files for you' if more else 'a clip for you'
    msg.set_content('Here is the clip from yesterday.\n')
    attach(msg, path)
    if more:
        inner = EmailMessage()
        inner.set_content('And the rest of the files.\n')
        for other in more:
            attach(inner, other)
        msg.attach(inner)
    with smtplib.SMTP('127.0.0.1', int(port), timeout=120) as smtp:
        smtp.starttls(context=ctx)
        smtp.login(user, password)
        refused = smtp.sendmail(sender, [to], msg.as_bytes(policy=msg.policy.clone(linesep='\r\n')),
                                rcpt_options=['NOTIFY=SUCCESS,FAILURE'])
    print(json.dumps({"refused": {k: [v[0], v[1].decode()] for k, v in refused.items()}}))
elif mode == 'fetch':
    m = imaplib.IMAP4('127.0.0.1', int(port))
    m.starttls(ssl_context=ctx)
    m.login(user, password)
    m.select('INBOX', readonly=True)
    typ, data = m.search(None, 'ALL')
    out = []
    for num in data[0].split():
        typ, parts = m.fetch(num, '(RFC822)')
        raw = parts[0][1]
        subject = next((l[9:] for l in raw.decode('latin-1').split('\r\n') if l.lower().startswith('subject: ')), '')
        out.append({"subject": subject, "raw": raw.decode('latin-1')})
    m.logout()
    print(json.dumps(out))
