# Posts one message as a mail client would: STARTTLS, AUTH, one RCPT (the list's address).
# usage: smtp_post.py HOST PORT USER PASS FROM TO SUBJECT BODY
import smtplib, ssl, sys
from email.message import EmailMessage
from email.utils import make_msgid, formatdate

host, port, user, password, sender, to, subject, body = sys.argv[1:9]
msg = EmailMessage()
msg['From'] = sender
msg['To'] = to
msg['Subject'] = subject
msg['Date'] = formatdate(localtime=False)
msg['Message-ID'] = make_msgid(domain='client.test')
msg['Received'] = 'from laptop.home (192.0.2.7) by client.test; leaking routing'
msg['X-Originating-IP'] = '192.0.2.7'
msg.set_content(body)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP(host, int(port), timeout=60) as s:
    s.starttls(context=ctx)
    s.login(user, password)
    refused = s.send_message(msg)
    if refused:
        print('refused', refused, file=sys.stderr)
        sys.exit(1)
print(msg['Message-ID'])
