"""Submits a message file with python3 smtplib: STARTTLS, AUTH, then prints the reply as JSON.

usage: smtp-send.py HOST PORT USER PASS FROM TO MESSAGE_FILE
"""
import json
import smtplib
import ssl
import sys

host, port, user, password, sender, recipient, path = sys.argv[1:8]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE  # the demo's certificate is self-signed for localhost
with open(path, 'rb') as f:
    message = f.read()
with smtplib.SMTP(host, int(port), timeout=60) as smtp:
    smtp.starttls(context=context)
    smtp.login(user, password)
    try:
        refused = smtp.sendmail(sender, [recipient], message)
        print(json.dumps({'ok': True, 'refused': {k: [v[0], v[1].decode()] for k, v in refused.items()}}))
    except smtplib.SMTPRecipientsRefused as err:
        print(json.dumps({'ok': False, 'refused': {k: [v[0], v[1].decode()] for k, v in err.recipients.items()}}))
