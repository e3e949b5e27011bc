"""Submits one message with python3's smtplib: STARTTLS (certificate verified), AUTH, DSN options.

Usage: smtplib_submit.py PORT CAFILE USER PASSWORD MAIL_FROM MESSAGE_FILE RCPT...
Prints one JSON line: {"refused": {rcpt: [code, text]}, "error": null | [code, text]}.
"""
import json
import smtplib
import ssl
import sys

port, cafile, user, password, mail_from, message_file, *rcpts = sys.argv[1:]
context = ssl.create_default_context(cafile=cafile)
with open(message_file, 'rb') as f:
    message = f.read()
result = {"refused": {}, "error": None}
with smtplib.SMTP('localhost', int(port), timeout=20) as smtp:
    smtp.ehlo()
    smtp.starttls(context=context)
    smtp.ehlo()
    smtp.login(user, password)
    try:
        refused = smtp.sendmail(mail_from, rcpts, message, mail_options=['RET=HDRS', 'ENVID=py-1'],
                                rcpt_options=['NOTIFY=SUCCESS,FAILURE'])
        result["refused"] = {k: [v[0], v[1].decode()] for k, v in refused.items()}
    except smtplib.SMTPRecipientsRefused as e:
        result["refused"] = {k: [v[0], v[1].decode()] for k, v in e.recipients.items()}
    except smtplib.SMTPResponseException as e:
        result["error"] = [e.smtp_code, e.smtp_error.decode()]
print(json.dumps(result))
