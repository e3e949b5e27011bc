"""Sends a mail with one attachment from one demo account to another and reads it back.

python3 smtplib submits it (STARTTLS, AUTH) at the sender's gateway; python3 imaplib (STARTTLS,
LOGIN) then waits at the recipient's INBOX until a message with that subject is there, fetches it
and prints, as one JSON line, the SHA-256 of the attachment it carries. There is no deadline here:
the test that runs this bounds it (and kills it).

usage: attachment-roundtrip.py SETTINGS_JSON SENDER RECIPIENT SUBJECT ATTACHMENT_FILE
  SETTINGS_JSON: the line `kith demo --json` prints.
"""
import email
import hashlib
import imaplib
import json
import smtplib
import ssl
import sys
import time
from email.message import EmailMessage
from email.policy import default as default_policy

settings_line, sender_name, recipient_name, subject, attachment_path = sys.argv[1:6]
agents = {a['name']: a for a in json.loads(settings_line)['agents']}
sender, recipient = agents[sender_name], agents[recipient_name]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE  # the demo's certificates are self-signed for localhost

with open(attachment_path, 'rb') as f:
    attachment = f.read()
message = EmailMessage()
message['From'] = sender['email']
message['To'] = recipient['email']
message['Subject'] = subject
message.set_content('The attachment is random bytes; its SHA-256 tells whether it arrived intact.')
message.add_attachment(attachment, maintype='application', subtype='octet-stream', filename='random.bin')

with smtplib.SMTP(sender['smtp']['host'], sender['smtp']['port']) as smtp:
    smtp.starttls(context=context)
    smtp.login(sender['smtp']['user'], sender['smtp']['pass'])
    refused = smtp.send_message(message)
if refused:
    print(json.dumps({'ok': False, 'refused': {k: [v[0], v[1].decode()] for k, v in refused.items()}}))
    sys.exit(1)

imap = imaplib.IMAP4(recipient['imap']['host'], recipient['imap']['port'])
imap.starttls(ssl_context=context)
imap.login(recipient['imap']['user'], recipient['imap']['pass'])
imap.select('INBOX')
while True:
    # NOOP lets the server tell us about new messages (EXISTS); then look for ours.
    imap.noop()
    _, found = imap.uid('SEARCH', None, 'SUBJECT', json.dumps(subject))
    uids = found[0].split()
    if uids:
        break
    time.sleep(0.1)
_, data = imap.uid('FETCH', uids[0], '(RFC822)')
received = email.message_from_bytes(data[0][1], policy=default_policy)
parts = [p for p in received.iter_attachments() if p.get_filename() == 'random.bin']
digest = hashlib.sha256(parts[0].get_content()).hexdigest() if parts else None
print(json.dumps({'ok': True, 'copies': len(uids), 'sha256': digest, 'size': len(parts[0].get_content()) if parts else 0}))
imap.logout()
